import pytest
import torch
from hypothesis import given, settings, strategies as st

from charrnn import limits
from training.data import (CorpusError, num_batches, random_batches, rare_to_unk, read_corpus, sequential_batches,
                           split, training_text)

IDS = torch.arange(1000)


def test_random_batches_shapes_targets_and_no_overlap():
    batches = list(random_batches(IDS, 4, 10, torch.Generator().manual_seed(0)))
    assert len(batches) == num_batches(len(IDS), 4, 10) or len(batches) == num_batches(len(IDS), 4, 10) - 1
    starts = []
    for x, y in batches:
        assert x.shape == y.shape == (4, 10)
        assert torch.equal(y, x + 1)  # the target is the next character
        assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # each row is a contiguous piece of the text
        starts += x[:, 0].tolist()
    assert len(set(starts)) == len(starts) and starts != sorted(starts)  # distinct pieces, shuffled


def test_sequential_batches_continue_each_row():
    batches = list(sequential_batches(IDS, 4, 10, torch.Generator().manual_seed(0)))
    assert len(batches) >= 20
    for (x0, _), (x1, y1) in zip(batches, batches[1:]):
        assert x1.shape == (4, 10) and torch.equal(y1, x1 + 1)
        assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # row b goes on where row b of the last batch stopped


def test_samplers_depend_on_the_seed_only():
    a = [x for x, _ in random_batches(IDS, 4, 10, torch.Generator().manual_seed(1))]
    b = [x for x, _ in random_batches(IDS, 4, 10, torch.Generator().manual_seed(1))]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_split_keeps_a_contiguous_tail():
    train, val = split("abcdefghij", 0.2)
    assert (train, val) == ("abcdefgh", "ij")
    with pytest.raises(ValueError):
        split("abc", 1.5)


def test_corpus_errors_are_clear(tmp_path):
    with pytest.raises(CorpusError, match="corpus not found"):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(CorpusError, match="is empty"):
        read_corpus(tmp_path / "empty.txt")
    (tmp_path / "gbk.txt").write_bytes("分开".encode("gbk"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        read_corpus(tmp_path / "gbk.txt")


def test_rare_characters_become_unk_more_often_than_common_ones():
    ids = torch.tensor([1] * 1000 + [2] * 10 + [3] * 1000)
    out = rare_to_unk(ids, 1.0, 0, torch.Generator().manual_seed(0))
    assert out.shape == ids.shape and set(out.tolist()) <= {0, 1, 2, 3}
    rare, common = (out[1000:1010] == 0).float().mean(), (out[:1000] == 0).float().mean()
    assert rare > 0 and common < 0.01 and rare > 5 * common
    assert torch.equal(rare_to_unk(ids, 0.0, 0, torch.Generator()), ids)


def test_a_text_to_train_on_is_checked_as_untrusted_input():
    lyrics = "窗外的麻雀\r\n在电线杆上多嘴\n" * 200
    assert training_text(lyrics.encode()) == lyrics.replace("\r\n", "\n")
    assert training_text(b"\xef\xbb\xbf" + lyrics.encode()) == lyrics.replace("\r\n", "\n")  # a BOM is dropped
    refusals = [(b"", "is empty"), (b" \n" * 2000, "is empty"), ("分开".encode() * 10, "has 20 characters"),
                (lyrics.encode("gbk"), "is not UTF-8 text"), (b"%PDF-1.4\x00\x01" * 300, "NUL bytes"),
                (b"\x01\x02abc" * 1000, "control characters"),
                (b"a" * (limits.TRAINING_BYTES + 1), "the most this takes is"),
                (b"a" * (limits.TRAINING_TEXT.high + 1), "5,000,001 characters")]
    for raw, message in refusals:
        with pytest.raises(CorpusError, match=message):
            training_text(raw, "lyrics.txt")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000) | st.text(max_size=3000).map(str.encode))
def test_any_bytes_are_a_text_or_a_clear_refusal(raw):
    try:
        text = training_text(raw)
    except CorpusError as e:
        assert str(e)
    else:
        assert len(text) in limits.TRAINING_TEXT and "\r" not in text
