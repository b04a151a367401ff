"""A character model mixes its network with count models (the bigram of its training text, and the lexicon of its
language): the bigram's rows sum to one over the model's vocabulary (the lexicon's: test_lexicon.py); scoring,
decoding and candidates all read the same mixture; the extended Hub folder saves and loads exactly and strictly;
folders made before the mixture, and before the lexicon, still load."""
import json
import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import CharRNN, Vocab
from charrnn.decoding.backends import NUMPY_ROWS
from charrnn.counts import BIGRAM_NAME, Bigram
from charrnn.decoding import Batch
from charrnn.lexicon import LEXICON_NAME
from charrnn.form import Options
from charrnn.loading import ModelFileError
from conftest import forward_probs


def at_shares(model, count_weight=0.3, lexicon_weight=0.3):
    """The model with its bigram and lexicon at these shares (0.3 each: every part weighs)."""
    return model.mix_counts(model.counts, count_weight, model.lexicon, lexicon_weight)


@pytest.fixture(scope="module")
def mixed(tiny_model_dir):
    model = CharRNN.from_pretrained(tiny_model_dir)
    assert model.count_weight > 0 and model.counts is not None  # training mixed them in
    assert model.lexicon_weight > 0 and model.lexicon is not None
    return at_shares(model)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="abc\n我你", min_size=2, max_size=60), st.floats(0.05, 0.95), st.integers(1, 3))
def test_the_count_model_is_a_distribution_over_the_vocabulary(text, weight, min_count):
    vocab = Vocab.build(text, min_count)
    bigram = Bigram.count(text)
    bigram.weight = weight
    table = bigram.table(vocab)
    assert table.shape == (len(vocab), len(vocab)) and (table >= 0).all()
    torch.testing.assert_close(table.sum(1), torch.ones(len(vocab)), rtol=0, atol=1e-5)
    for p in vocab.chars:  # each known character's own column is the bigram's probability of it
        for c in vocab.chars:
            assert table[vocab.stoi[p], vocab.stoi[c]].item() == pytest.approx(bigram.p(c, p), rel=1e-5)
    unigram = torch.tensor([bigram.p_unigram(c) for c in vocab.chars])
    torch.testing.assert_close(table[vocab.unk_id, 1:], unigram.float())  # after <unk>: the unigram


def test_scoring_reads_the_mixture(mixed, lyrics_file):
    """Each known character's probability is its column of the mixture (one outside the vocabulary: the next test)."""
    text, context = "我想要你的微笑\n不要", "分开\n"
    assert not mixed.vocab.unknown(text)
    ids = mixed.vocab.encode(context + text)
    probs = forward_probs(mixed, ids)[len(context) - 1:-1]
    expected = [float(row[t]) for row, t in zip(probs, ids[len(context):])]
    score = mixed.score(text, context)
    assert [c.prob for c in score.chars] == pytest.approx(expected, rel=1e-4)
    for shares in ((0.0, 0.0), (0.3, 0.0), (0.0, 0.3)):  # the network alone, and each count model left out,
        assert abs(at_shares(mixed, *shares).score(text, context).nll - score.nll) > 0.1  # score otherwise
    at_shares(mixed)


@pytest.mark.parametrize("rows", [1, 3, NUMPY_ROWS + 1],
                         ids=["one stream: numpy", "small batch: numpy", "large batch: torch"])
def test_decoding_reads_the_same_mixture_less_the_networks_smoothing(mixed, rows):
    """Batch.p, what candidates are ranked by, is the scored distribution; the weights decoding draws from take
    the network's share of its label-smoothing prior back out (the one place decoding departs, on purpose)."""
    prefix = "分开"
    batch = Batch(mixed, [prefix] * rows, 10, [Options(1.0, seed=1)] * rows)
    probs = forward_probs(mixed, mixed.vocab.encode(prefix))[-1]
    for row in range(rows):
        torch.testing.assert_close(torch.as_tensor(batch.probs[row]), probs, rtol=1e-4, atol=1e-7)
        expected = (probs - (1 - mixed.count_share) * mixed.smoothing * mixed.prior).clamp(min=0)
        expected[mixed.vocab.unk_id] = 0
        torch.testing.assert_close(torch.as_tensor(batch.weights[row]), expected, rtol=1e-4, atol=1e-7)


def test_a_character_outside_the_vocabulary_has_each_count_models_own_probability(mixed):
    """The network gives it a 10,000th of its <unk> (the fair rule); the bigram and the lexicon each give it their
    own probability of it: the bigram's after the character before, the lexicon's from its words."""
    outside = next(c for c in "珍惜鑫淼" if c not in mixed.vocab and c in mixed.lexicon.chars)
    text, context = "我" + outside + "你", "分开\n"
    ids = mixed.vocab.encode(context + text)
    network = at_shares(mixed, 0.0, 0.0)
    net_unk = forward_probs(network, ids)[len(context)][mixed.vocab.unk_id].item()
    at_shares(mixed)
    lexicon, j, i = mixed.lexicon, mixed.lexicon.chars.index(outside), mixed.lexicon.chars.index("我")
    pair = dict(zip(map(tuple, lexicon.pairs.tolist()), lexicon.pair_weights)).get((i, j), 0.0)
    lexicon_p = (pair + lexicon.ends[i] * lexicon.first[j] / lexicon.first_total) / (lexicon.ends[i] + lexicon.follows[i])
    expected = 0.4 * net_unk / 10000 + 0.3 * mixed.counts.fair_p(outside, "我") + 0.3 * lexicon_p
    assert mixed.score(text, context).chars[1].prob == pytest.approx(expected, rel=1e-4)
    assert mixed.lexicon.outside_probs(mixed.vocab, ["我"], outside)[0] > 1e-4 * 0.3  # it counts


def a_word_across_the_vocabulary(model) -> tuple[str, str]:
    """Two characters that begin a word of the lexicon: the first outside the model's vocabulary, the second in."""
    chars, vocab = model.lexicon.chars, model.vocab
    return next((chars[i], chars[j]) for i, j in model.lexicon.pairs.tolist()
                if chars[i] not in vocab and chars[j] in vocab and chars[i] in "".join(model.counts.unigram))


def by_hand_after(model, outside: str, network_probs: torch.Tensor) -> torch.Tensor:
    """The mixture after a character outside the vocabulary, which the network reads as <unk>: each count model's
    row is the one it has for that character."""
    parts = [(model.count_weight, model.counts), (model.lexicon_weight, model.lexicon)]
    return (1 - model.count_share) * network_probs + sum(w * part.rows(model.vocab, [outside])[0] for w, part in parts)


def test_after_a_character_outside_the_vocabulary_the_count_models_read_it(mixed):
    outside, inside = a_word_across_the_vocabulary(mixed)
    lexicon = mixed.lexicon
    i, j = lexicon.chars.index(outside), lexicon.chars.index(inside)
    pair = dict(zip(map(tuple, lexicon.pairs.tolist()), lexicon.pair_weights))[i, j]
    row = by_hand_after(mixed, outside, torch.zeros(len(mixed.vocab)))  # the count models' part alone
    assert row[mixed.vocab.stoi[inside]] == pytest.approx(  # the formulas of counts.py and lexicon.py
        0.3 * mixed.counts.p(inside, outside) + 0.3 * (pair + lexicon.ends[i] * lexicon.first[j] / lexicon.first_total)
        / (lexicon.ends[i] + lexicon.follows[i]), rel=1e-4)
    for text, context in ((outside + inside, "分开\n"), (inside, "分开\n" + outside)):
        ids = mixed.vocab.encode(context + text)
        network = forward_probs(at_shares(mixed, 0.0, 0.0), ids)[len(context + text) - 2]
        at_shares(mixed)
        expected = by_hand_after(mixed, outside, network)[mixed.vocab.stoi[inside]].item()
        assert mixed.score(text, context).chars[-1].prob == pytest.approx(expected, rel=1e-4)
        as_unk = float(forward_probs(mixed, ids)[len(context + text) - 2][mixed.vocab.stoi[inside]])  # <unk>'s row
        assert abs(expected - as_unk) > 0.05 * expected  # the character's own row is really read


@pytest.mark.parametrize("rows", [1, NUMPY_ROWS + 1], ids=["numpy", "torch"])
def test_decoding_after_a_prefix_ending_outside_the_vocabulary_reads_the_same_rows(mixed, rows):
    outside, _ = a_word_across_the_vocabulary(mixed)
    prefix = "分开" + outside
    batch = Batch(mixed, [prefix] * rows, 10, [Options(1.0, seed=1)] * rows)
    ids = mixed.vocab.encode(prefix)
    network = forward_probs(at_shares(mixed, 0.0, 0.0), ids)[-1]
    at_shares(mixed)
    for row in range(rows):
        torch.testing.assert_close(torch.as_tensor(batch.probs[row]), by_hand_after(mixed, outside, network),
                                   rtol=1e-4, atol=1e-7)
    for c in mixed.candidates(prefix, 2, 20, seed=3):
        assert c.logprob == pytest.approx(-mixed.score(c.text, prefix).nll, rel=1e-4)


def test_candidates_log_probability_is_the_scored_one(mixed):
    for c in mixed.candidates("分开", 3, 30, seed=2):
        assert c.logprob == pytest.approx(-mixed.score(c.text, "分开").nll, rel=1e-4)


def test_the_mixture_saves_and_loads_exactly(mixed, tmp_path):
    mixed.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["count_weight"], config["lexicon_weight"]) == (0.3, 0.3)
    loaded = CharRNN.from_pretrained(tmp_path / "m")
    assert (loaded.count_weight, loaded.lexicon_weight) == (0.3, 0.3)
    assert (loaded.counts.unigram, loaded.counts.pairs, loaded.counts.weight) == (
        mixed.counts.unigram, mixed.counts.pairs, mixed.counts.weight)
    torch.testing.assert_close(loaded.count_table("cpu"), mixed.count_table("cpu"), rtol=0, atol=0)
    assert loaded.score("我想要你的微笑").nll == mixed.score("我想要你的微笑").nll
    assert loaded.generate("分开", 40, seed=3) == mixed.generate("分开", 40, seed=3)


@pytest.mark.parametrize("name, what", [(BIGRAM_NAME, "a count model"), (LEXICON_NAME, "a lexicon")])
def test_a_mixing_folder_without_its_count_model_is_refused_clearly(tiny_model_dir, tmp_path, name, what):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / name).unlink()
    with pytest.raises(ModelFileError, match=f"mixes in {what}, but {name} is not usable"):
        CharRNN.from_pretrained(folder)
    (folder / name).write_bytes(b"\x00damaged")
    with pytest.raises(ModelFileError, match=f"mixes in {what}"):
        CharRNN.from_pretrained(folder)


@pytest.mark.parametrize("shares", [(-0.1, 0.2), (1.0, 0.0), (2, 0.0), (0.2, -0.1), (0.0, 1.0), (0.6, 0.4),
                                    ("0.3", 0.2), (0.2, None), (True, 0.2)])
def test_a_share_out_of_range_is_refused(tiny_model_dir, tmp_path, shares):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "count_weight": shares[0], "lexicon_weight": shares[1]}))
    message = "count_weight and lexicon_weight must each be at least 0 and together below 1"
    with pytest.raises(ModelFileError, match=message):
        CharRNN.from_pretrained(folder)
    model = CharRNN.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match=message):
        model.mix_counts(Bigram.count("ab"), shares[0], model.lexicon, shares[1])


def test_a_share_without_its_count_model_is_refused(tiny_model_dir):
    model = CharRNN.from_pretrained(tiny_model_dir)
    for args in ((None, 0.2), (model.counts, 0.2, None, 0.2)):
        with pytest.raises(ValueError, match="a count model's share needs the count model"):
            model.mix_counts(*args)


def test_a_folder_made_before_the_mixture_still_loads(tiny_model_dir, tmp_path):
    """Its config.json has no count_weight (and the oldest folders have no bigram either): the network alone."""
    folder = tmp_path / "old"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["count_weight"], config["lexicon_weight"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / BIGRAM_NAME).unlink()
    (folder / LEXICON_NAME).unlink()
    old = CharRNN.from_pretrained(folder)
    assert old.count_share == 0 and old.counts is None and old.lexicon is None
    ids = old.vocab.encode("\n我想要你的微笑")
    with torch.no_grad():
        logits, _ = old(torch.tensor([ids]))
    expected = logits[0, :-1].log_softmax(-1).gather(1, torch.tensor(ids[1:])[:, None]).sum().item()
    assert old.score("我想要你的微笑").nll == pytest.approx(-expected, rel=1e-5)
    assert len(old.generate("分开", 20, seed=1)) == 20


def test_a_folder_made_before_the_lexicon_still_loads(tiny_model_dir, tmp_path):
    """Its config.json has no lexicon_weight and it has no lexicon.safetensors: the network and the bigram."""
    folder = tmp_path / "old"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["lexicon_weight"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / LEXICON_NAME).unlink()
    old = CharRNN.from_pretrained(folder)
    assert old.lexicon_weight == 0 and old.lexicon is None and old.count_weight == config["count_weight"]
    ids = old.vocab.encode("\n我想要你的微笑")
    expected = forward_probs(old, ids)[:-1].gather(1, torch.tensor(ids[1:])[:, None]).log().sum().item()
    assert old.score("我想要你的微笑").nll == pytest.approx(-expected, rel=1e-5)
    assert len(old.generate("分开", 20, seed=1)) == 20
