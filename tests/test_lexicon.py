"""The lexicon: a language's words as a count model. Its rows are distributions over a model's vocabulary and are
the docstring's formula; the real Chinese list knows words the tiny corpus does not; it saves and loads exactly,
and a damaged file is refused; training chooses its share on the held-out text, and bad flags are refused."""
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import CharRNN, Vocab
from charrnn.evaluate import count_probs, score
from charrnn.lexicon import LEXICON_NAME, Lexicon
from conftest import tiny_config
from training.train import METRICS_NAME, best_shares, mixture_nll, train

frequency = st.one_of(st.just(0.0), st.floats(1e-6, 5.0))  # wordfreq's are at least 1e-8; none is denormal
words = st.lists(st.tuples(st.text(alphabet="abcd我你", min_size=1, max_size=4), frequency), max_size=12)


def by_hand(frequencies, c: str, p: str) -> float:
    """P(c | p) as the module's docstring defines it, over every character (no vocabulary)."""
    frequencies = [(w, f) for w, f in frequencies if f > 0]
    total = sum(f for _, f in frequencies)
    first = sum(f for w, f in frequencies if w[0] == c) / total
    ends = sum(f for w, f in frequencies if w[-1] == p)
    pairs = sum(f * sum(1 for a, b in zip(w, w[1:]) if (a, b) == (p, c)) for w, f in frequencies)
    follows = sum(f * sum(1 for a in w[:-1] if a == p) for w, f in frequencies)
    return (pairs + ends * first) / (follows + ends) if follows + ends else first


@settings(max_examples=60, deadline=None)
@given(words, st.text(alphabet="abc\n我", min_size=1, max_size=20))
def test_the_rows_are_the_formula_and_sum_to_one_over_the_vocabulary(frequencies, text):
    if not any(f > 0 for _, f in frequencies):
        with pytest.raises(ValueError, match="at least one word"):
            Lexicon.of_words(frequencies, "abcd我你")
        return
    vocab = Vocab.build(text, 1)
    lexicon = Lexicon.of_words(frequencies)
    table = lexicon.table(vocab)
    assert table.shape == (len(vocab), len(vocab)) and (table >= 0).all()
    torch.testing.assert_close(table.sum(1), torch.ones(len(vocab)), rtol=0, atol=1e-5)
    for p in vocab.chars:
        for c in vocab.chars:
            assert table[vocab.stoi[p], vocab.stoi[c]].item() == pytest.approx(by_hand(frequencies, c, p), abs=1e-6)
    outside = [c for c in lexicon.chars if c not in vocab] + ["z"]  # z: no word holds it
    for p in [None, *lexicon.chars]:  # after any character, one the vocabulary holds or not, each character
        row = lexicon.rows(vocab, [p])[0]  # outside the vocabulary has its own share of the <unk> column
        if p in vocab:
            torch.testing.assert_close(row, table[vocab.stoi[p]])
        for c in vocab.chars:
            assert row[vocab.stoi[c]].item() == pytest.approx(by_hand(frequencies, c, p or "none"), abs=1e-6)
        own = lexicon.outside_probs(vocab, [p] * len(outside), outside)
        assert own[-1] == 0
        for c, q in zip(outside, own):
            assert q == pytest.approx(by_hand(frequencies, c, p or "none"), abs=1e-9)
        assert own.sum() == pytest.approx(row[vocab.unk_id].item(), abs=1e-5)


def test_characters_outside_the_kept_ones_weigh_in_the_totals():
    """Keeping only some characters must not change their rows: the rest goes to <unk>."""
    frequencies = [("ab", 2.0), ("ax", 1.0), ("xb", 1.0), ("b", 3.0)]
    vocab = Vocab(["a", "b"])
    table = Lexicon.of_words(frequencies, "ab").table(vocab)
    assert table[vocab.stoi["a"], vocab.stoi["b"]].item() == pytest.approx(by_hand(frequencies, "b", "a"))
    assert table[vocab.stoi["a"], vocab.unk_id].item() == pytest.approx(1 - by_hand(frequencies, "b", "a")
                                                                        - by_hand(frequencies, "a", "a"))


@pytest.fixture(scope="module")
def chinese():
    return Lexicon.of_language("zh", "寂寞的我你想要微笑窗外\n")


def test_the_chinese_list_knows_words(chinese):
    vocab = Vocab(list("寂寞的我你想要微笑窗外\n"))
    table = chinese.table(vocab)
    row = lambda p: table[vocab.stoi[p]]  # noqa: E731
    assert row("寂")[vocab.stoi["寞"]] > 0.5  # 寂寞, lonely: hardly anything else follows 寂
    assert row("微")[vocab.stoi["笑"]] > 10 * row("微")[vocab.stoi["窗"]]
    assert row("\n")[vocab.stoi["的"]] == pytest.approx(chinese.first[chinese.chars.index("的")] / chinese.first_total)
    assert chinese.source.startswith("wordfreq 3.") and chinese.source.endswith("(large list, zh)")


def test_an_unknown_language_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="no word list for language 'xx'.*zh"):
        Lexicon.of_language("xx", "ab")


def test_it_saves_and_loads_exactly(chinese, tmp_path):
    chinese.save(tmp_path / LEXICON_NAME)
    loaded = Lexicon.load(tmp_path / LEXICON_NAME)
    assert (loaded.chars, loaded.first_total, loaded.source) == (chinese.chars, chinese.first_total, chinese.source)
    for name in ("first", "ends", "follows", "pairs", "pair_weights"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(chinese, name))


@pytest.mark.parametrize("damage", ["bytes", "pairs out of range", "short arrays", "pairs out of order"])
def test_a_damaged_file_is_refused(chinese, tmp_path, damage):
    path = tmp_path / LEXICON_NAME
    if damage == "bytes":
        path.write_bytes(b"\x00not safetensors")
    else:
        broken = Lexicon(chinese.chars, chinese.first, chinese.ends, chinese.follows, chinese.first_total,
                         chinese.pairs + len(chinese.chars), chinese.pair_weights)
        if damage == "short arrays":
            broken = Lexicon(chinese.chars, chinese.first[:-1], chinese.ends, chinese.follows, chinese.first_total,
                             chinese.pairs, chinese.pair_weights)
        if damage == "pairs out of order":
            broken = Lexicon(chinese.chars, chinese.first, chinese.ends, chinese.follows, chinese.first_total,
                             chinese.pairs[::-1].copy(), chinese.pair_weights[::-1].copy())
        broken.save(path)
    with pytest.raises(ValueError, match="is not a charrnn lexicon"):
        Lexicon.load(path)


def test_training_mixes_it_in_at_the_share_that_scores_best(tiny_model_dir):
    """The shares come from each part's probability of every held-out character; the model's own scoring of the
    held-out text at those shares gives the same figure, and no other pair of shares on the grid does better."""
    metrics = json.loads((tiny_model_dir / METRICS_NAME).read_text(encoding="utf-8"))
    model = CharRNN.from_pretrained(tiny_model_dir)
    assert metrics["lexicon_weight"] == model.lexicon_weight > 0  # real words help on real lyrics
    assert (tiny_model_dir / LEXICON_NAME).is_file()
    from training.data import read_corpus, split
    _, val = split(read_corpus(metrics["train_config"]["corpus"]))
    parts = [count_probs(c, model.vocab, val) for c in (model.counts, model.lexicon)]
    shares = (model.count_weight, model.lexicon_weight)
    network = score(model.mix_counts(None, 0), val).probs.astype(np.float64)
    assert best_shares(network, *parts) == shares
    assert metrics["val_ppl"] == pytest.approx(math.exp(mixture_nll(network, parts, shares) / len(val)), rel=1e-5)
    assert metrics["val_ppl"] < math.exp(mixture_nll(network, parts[:1], best_shares(network, parts[0])) / len(val))
    assert metrics["bigram_ppl"] > metrics["bigram_lexicon_ppl"]  # the counting baseline gets the lexicon too


@pytest.mark.parametrize("flags, message", [
    (dict(lexicon="xx"), "no word list for language 'xx'"),
    (dict(lexicon="zh", mix_counts=False), "--lexicon .* needs --mix-counts"),
    (dict(lexicon="zh", task="next-line"), "--lexicon is for character models"),
])
def test_bad_lexicon_flags_are_refused_before_training(lyrics_file, tmp_path, flags, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_config(lyrics_file, tmp_path / "m", **flags))
    assert not (tmp_path / "m").exists()
