"""The bigram baseline: hand-computed probabilities, rows that sum to one, the fair rule, exact save and load."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charrnn import Vocab
from charrnn.counts import BIGRAM_NAME, Bigram
from charrnn.evaluate import OOV_PENALTY
from training.baselines import baselines
from training.data import split


def test_probabilities_by_hand():
    bigram = Bigram.count("abab\n")  # unigram a2 b2 \n1 (total 5, kinds 3); pairs ab2 ba1 b\n1
    bigram.weight = 0.5
    assert bigram.p("b", "a") == pytest.approx(0.5 * 2 / 2 + 0.5 * 2 / 8)
    assert bigram.p("\n", "b") == pytest.approx(0.5 * 1 / 2 + 0.5 * 1 / 8)
    assert bigram.p("a", "\n") == pytest.approx(2 / 8)  # nothing ever followed a line break: the unigram alone
    assert bigram.p("z", "a") == pytest.approx(0.5 * 3 / 8)  # the <unk> slot: kinds / (total + kinds)
    score = bigram.score("az", context="b")
    assert score.nll == pytest.approx(-math.log(bigram.p("a", "b")) - math.log(bigram.p("z", "a")) + OOV_PENALTY)
    assert score.count == 2
    assert bigram.score("a").nll == pytest.approx(-math.log(bigram.p("a", "\n")))  # no context: a line's start


@given(st.text(alphabet="abc\n我你", min_size=2, max_size=60), st.sampled_from("abcz\n我"),
       st.floats(0.05, 0.95))
def test_every_row_sums_to_one(text, prev, weight):
    bigram = Bigram.count(text)
    bigram.weight = weight
    total = sum(bigram.p(c, prev) for c in bigram.unigram) + bigram.p("never counted", prev)
    assert total == pytest.approx(1.0)


@given(st.text(alphabet="abc\n我你", min_size=2, max_size=60), st.sets(st.sampled_from("abcdxyz我你他"), max_size=8),
       st.floats(0.05, 0.95))
def test_rows_over_a_vocabulary_are_distributions_whatever_it_counted(text, chars, weight):
    """A model fine-tuned on the bigram's text knows characters the bigram never counted: they share its <unk> slot
    with the characters outside the vocabulary, so each row still sums to one (each took the whole slot once, and
    a fine-tuned model's mixture was off by orders of magnitude)."""
    bigram = Bigram.count(text)
    bigram.weight = weight
    vocab = Vocab(sorted(chars | set(text)))  # every counted character in it: <unk> holds only what was never counted
    rows = bigram.rows(vocab, [None, *vocab.chars, "never counted"])
    assert (rows >= 0).all() and rows.sum(1).double().numpy() == pytest.approx(1.0, abs=1e-5)
    uncounted = [c for c in vocab.chars if c not in bigram.unigram]
    if uncounted:  # each as much as an outside character: one part of the slot
        assert rows[0, vocab.stoi[uncounted[0]]].item() == pytest.approx(rows[0, vocab.unk_id].item(), rel=1e-5)


def test_the_bigram_beats_the_unigram_where_pairs_repeat():
    _, unigram, bigram = baselines("abababababab", "ababab")
    assert bigram < 1.5 < unigram  # b always follows a: the bigram is nearly certain, the unigram is not


def test_save_and_load_are_exact(tmp_path):
    bigram = Bigram.count("窗外的麻雀\n在电线杆上多嘴\n你说这一句\n").tune("窗外的你\n")
    bigram.save(tmp_path / BIGRAM_NAME)
    loaded = Bigram.load(tmp_path / BIGRAM_NAME)
    assert (loaded.unigram, loaded.pairs, loaded.weight, loaded.newlines) == (
        bigram.unigram, bigram.pairs, bigram.weight, bigram.newlines)
    assert loaded.score("你说的麻雀").nll == bigram.score("你说的麻雀").nll


def test_a_file_that_is_no_bigram_is_refused(tmp_path, tiny_model_dir):
    (tmp_path / "junk").write_bytes(b"\x00not safetensors")
    for path in (tmp_path / "junk", tiny_model_dir / "model.safetensors"):
        with pytest.raises(ValueError, match="not a charrnn bigram"):
            Bigram.load(path)


def test_the_trainer_ships_the_bigram_its_metrics_report(tiny_model_dir, lyrics_file):
    import json
    metrics = json.loads((tiny_model_dir / "metrics.json").read_text())
    bigram = Bigram.load(tiny_model_dir / BIGRAM_NAME)
    _, val = split(lyrics_file.read_text(encoding="utf-8"))
    assert bigram.score(val[1:], val[:1]).perplexity == pytest.approx(metrics["bigram_ppl"])
    assert bigram.score(val[1:], val[:1], weight=0.0).perplexity == pytest.approx(metrics["unigram_ppl"])
    assert bigram.total == metrics["train_chars"]
