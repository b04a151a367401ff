import math

import numpy as np
import pytest
import torch

from charrnn import CELLS, CharRNN, Vocab
from charrnn.decoding import backends
from charrnn.decoding.backends import NUMPY_ROWS, ColumnBlocks, numpy_sample
from charrnn.decoding import Batch, Stepper, prime
from charrnn.form import Options
from conftest import forward_probs


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return CharRNN.from_pretrained(tiny_model_dir)


def next_char_probs(model, probs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """What decoding should sample from, given the model's probabilities [..., V] (conftest.forward_probs): its
    network predicts (1 - e) p + e * prior, so the network's share of the smoothing prior comes back out; then
    <unk> never, then the temperature. This is where decoding departs from the distribution scoring uses."""
    probs = (probs - (1 - model.count_share) * model.smoothing * model.prior).clamp(min=0)
    probs[..., model.vocab.unk_id] = 0
    return probs ** (1 / temperature)


def test_models_are_trained_with_a_unigram_prior_to_take_out(model):
    assert model.smoothing == 0.3 and model.prior.sum().item() == pytest.approx(1.0)
    assert model.prior.max() > 5 / len(model.vocab)  # the training unigram, not a uniform vector


def test_seed_makes_generation_repeatable_and_stream_equals_generate(model):
    text = model.generate("分开", 40, temperature=1.0, seed=7)
    assert len(text) == 40
    assert model.generate("分开", 40, temperature=1.0, seed=7) == text
    assert "".join(model.stream("分开", 40, temperature=1.0, seed=7)) == text
    assert model.generate("分开", 40, temperature=1.0, seed=8) != text


def test_greedy_follows_the_full_forward_pass(model):
    """Temperature 0 must pick the argmax of what re-running the whole text would give (<unk> excluded)."""
    prefix = "分开"
    text = model.generate(prefix, 15, temperature=0)
    ids = model.vocab.encode(prefix + text)
    expected = next_char_probs(model, forward_probs(model, ids)[len(prefix) - 1:-1]).argmax(-1).tolist()
    assert ids[len(prefix):] == expected


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_size", [1, 3, NUMPY_ROWS + 1],
                         ids=["one stream: numpy", "small batch: numpy", "large batch: torch"])
def test_one_step_decoding_matches_the_model_for_every_cell(cell, batch_size, lyrics_file):
    vocab = Vocab.build(lyrics_file.read_text(encoding="utf-8"))
    torch.manual_seed(0)
    model = CharRNN(vocab.to_dict(), cell=cell, embed_size=8, hidden_size=16, num_layers=2, head_size=6,
                    smoothing=0.1).eval()
    ids = torch.tensor([vocab.encode("分开不分开我")])
    with torch.no_grad():
        logits, _ = model(ids)
    stepper = Stepper(model, batch_size=batch_size)
    _, state = prime(model, stepper, ["分开不分开"] * batch_size)
    model_probs = stepper.distribution(stepper.step(stepper.array(ids[:, -1].repeat(batch_size)), state))
    step_probs = stepper.weights(model_probs)
    assert isinstance(step_probs, np.ndarray if batch_size <= NUMPY_ROWS else torch.Tensor)
    step_probs = torch.as_tensor(step_probs)
    expected = next_char_probs(model, logits[0, -1].softmax(-1))
    for row, model_row in zip(step_probs, torch.as_tensor(model_probs)):
        torch.testing.assert_close(row, expected)
        torch.testing.assert_close(model_row, logits[0, -1].softmax(-1))  # what scoring and candidates use


def test_a_weight_in_column_blocks_multiplies_as_the_whole(monkeypatch):
    monkeypatch.setattr(backends, "BLOCK_FLOATS", 16 * 64)  # blocks of 64 columns: 64, 64 and a ragged 22
    weight = np.random.default_rng(0).standard_normal((16, 150), dtype=np.float32)
    blocked = ColumnBlocks(weight)
    assert [block.shape for _, block in blocked.blocks] == [(16, 64), (16, 64), (16, 22)]
    for rows in range(1, 9):  # below BLOCKED_ROWS the whole weight is used, from it block by block
        x = np.random.default_rng(rows).standard_normal((rows, 16), dtype=np.float32)
        np.testing.assert_allclose(x @ blocked, x @ weight, rtol=1e-5, atol=1e-5)


def test_blocked_decoding_matches_the_model(monkeypatch, lyrics_file):
    monkeypatch.setattr(backends, "BLOCK_FLOATS", 64)
    vocab = Vocab.build(lyrics_file.read_text(encoding="utf-8"))
    torch.manual_seed(0)
    model = CharRNN(vocab.to_dict(), cell="lstm", embed_size=8, hidden_size=16, head_size=6).eval()
    stepper = Stepper(model, batch_size=4)
    assert isinstance(stepper.layers[0][2], ColumnBlocks) and isinstance(stepper.head_w, ColumnBlocks)
    ids = torch.tensor([vocab.encode("分开不分开我")])
    _, state = prime(model, stepper, ["分开不分开"] * 4)
    probs = stepper.distribution(stepper.step(stepper.array(ids[:, -1].repeat(4)), state))
    with torch.no_grad():
        expected = model(ids)[0][0, -1].softmax(-1)
    for row in torch.as_tensor(probs):
        torch.testing.assert_close(row, expected)


@pytest.mark.parametrize("rows, size", [(1, 68), (3, 68), (1, 2500), (3, 2500)],
                         ids=["numpy sums, one row", "numpy sums, rows", "one long row", "torch sums"])
def test_sampling_draws_the_first_id_past_its_uniform_share(rows, size):
    rng = np.random.default_rng(size + rows)
    for _ in range(50):
        weights = rng.random((rows, size), dtype=np.float32) * (rng.random((rows, size)) < 0.3)  # many zeros
        weights[:, -1] = 0
        uniforms = rng.random(rows).tolist()
        ids = numpy_sample(weights, uniforms, [False] * rows)
        cdf = weights.astype(np.float64).cumsum(1)
        expected = (cdf[:, :-1] <= np.array(uniforms)[:, None] * cdf[:, -1:]).sum(1).tolist()
        assert ids == expected
        assert all(weights[row, i] > 0 for row, i in enumerate(ids))


def allowed_sets(model, prefix, text, temperature, top_k=None, top_p=None):
    """For each generated character, the ids that top-k / top-p allowed at that step (after the temperature)."""
    ids = model.vocab.encode(prefix + text)
    sets = []
    for row in next_char_probs(model, forward_probs(model, ids)[len(prefix) - 1:-1], temperature):
        probs, order = (row / row.sum()).sort(descending=True)
        keep = min(top_k or len(order), int((probs > 0).sum()))
        if top_p is not None:
            keep = min(keep, int((probs.cumsum(0) - probs < top_p).sum()))
        sets.append(set(order[:keep].tolist()))
    return ids[len(prefix):], sets


@pytest.mark.parametrize("options", [{"top_k": 3}, {"top_p": 0.5}, {"top_k": 5, "top_p": 0.8}])
def test_top_k_and_top_p_never_emit_excluded_characters(model, options):
    for seed in range(5):
        one = model.generate("我", 30, temperature=1.5, seed=seed, **options)  # numpy steps a single stream
        batch = model.generate_batch(["我", "我"], 30, temperature=1.5, seed=seed, **options)  # torch a batch
        for text in [one, *batch]:
            emitted, allowed = allowed_sets(model, "我", text, 1.5, **options)
            assert all(i in s for i, s in zip(emitted, allowed))
    assert model.generate("我", 30, top_k=1, seed=1) == model.generate("我", 30, temperature=0)


def test_a_very_low_temperature_samples_like_greedy(model):
    """p ** (1 / 0.001) rounds every probability to zero unless decoding rescales first."""
    for prefixes in (["分开"], ["分开", "我想"]):  # numpy for one stream, torch for a batch
        assert model.generate_batch(prefixes, 30, temperature=0.001, seed=1) == \
            model.generate_batch(prefixes, 30, temperature=0)


def test_a_batch_decodes_several_sequences_at_once(model):
    prefixes = ["分开", "我想", "", "分"]
    greedy = model.generate_batch(prefixes, 20, temperature=0)
    assert greedy == [model.generate(p, 20, temperature=0) for p in prefixes]
    sampled = model.generate_batch(prefixes * 8, 20, seed=3)
    assert len(sampled) == 32 and all(len(s) == 20 for s in sampled)
    assert len(set(sampled)) > 1


def test_prefix_edge_cases_are_handled(model):
    assert len(model.generate("", 10, seed=1)) == 10
    assert len(model.generate("😀\x00 zzz 分开", 10, seed=1)) == 10  # all outside the vocabulary but 分开
    assert model.generate("分开", 0) == ""
    assert "\ufffd" not in model.generate("分开", 200, temperature=2.0, seed=1)  # <unk> is never emitted


@pytest.mark.parametrize("options, message", [
    ({"length": -1}, "length"), ({"length": 2.5}, "length"),
    ({"temperature": -0.1}, "temperature"), ({"temperature": math.nan}, "temperature"),
    ({"temperature": 1e9}, "temperature"), ({"top_k": 0}, "top_k"),
    ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"),
])
def test_bad_options_are_refused_clearly(model, options, message):
    with pytest.raises(ValueError, match=message):
        model.generate("分开", **{"length": 5, **options})


def test_batches_share_the_models_count_table(model):
    """Compare makes a batch per model per request: each reads the model's one scaled table, no [V, V] copy."""
    first, second = (Batch(model, ["分开"], 5, [Options(seed=1)]) for _ in "ab")
    first, second = first.stepper, second.stepper
    assert first.counts is not None and np.shares_memory(np.asarray(first.counts), np.asarray(second.counts))
    assert torch.allclose(torch.as_tensor(first.counts), model.count_table(model.device) * model.count_share)
