import pytest

from charrnn import Vocab


def test_ids_are_deterministic_and_independent_of_order():
    a = Vocab.build("abcabcxyzxyz", min_count=1)
    b = Vocab.build("zyxzyxcbacba", min_count=1)
    assert a.itos == b.itos == ["<unk>", "a", "b", "c", "x", "y", "z"]
    assert a.encode("cab") == b.encode("cab") == [3, 1, 2]


def test_rare_characters_become_unk_so_unk_is_trained():
    vocab = Vocab.build("aab", min_count=2)
    assert "b" not in vocab and vocab.encode("ab") == [1, vocab.unk_id]
    assert vocab.unknown("abb😀") == ["b", "😀"]


def test_round_trip_and_unknown_characters():
    vocab = Vocab.build("分开不分开\n", min_count=1)
    assert vocab.decode(vocab.encode("分开\n不")) == "分开\n不"
    assert vocab.decode(vocab.encode("分x")) == "分\ufffd"


def test_newline_mode_is_the_models_own_normalisation():
    keep = Vocab.build("ab\r\nab\n", min_count=1)
    space = Vocab.build("ab\r\nab\n", min_count=1, newlines="space")
    assert "\n" in keep and "\r" not in keep
    assert "\n" not in space and space.encode("a\nb") == space.encode("a b")
    assert Vocab.from_dict(space.to_dict()) == space


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="newlines"):
        Vocab.build("abc", newlines="drop")
