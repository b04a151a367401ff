import json

import pytest
import torch
from safetensors.torch import save_file

from charrnn import CELLS, CharRNN, ModelFileError, Vocab
from charrnn.cells import ScratchRNN

VOCAB = Vocab.build("分开不分开我想要你的微笑每天都能看到", min_count=1).to_dict()


def test_scratch_rnn_matches_nn_rnn_given_the_same_weights():
    torch.manual_seed(0)
    scratch, reference = ScratchRNN(5, 8, num_layers=2), torch.nn.RNN(5, 8, num_layers=2, batch_first=True)
    with torch.no_grad():
        for k, layer in enumerate(scratch.layers):
            layer.W_xh.copy_(getattr(reference, f"weight_ih_l{k}").t())
            layer.W_hh.copy_(getattr(reference, f"weight_hh_l{k}").t())
            layer.b_h.copy_(getattr(reference, f"bias_ih_l{k}") + getattr(reference, f"bias_hh_l{k}"))
    x, h0 = torch.randn(3, 7, 5), torch.randn(2, 3, 8)
    (out, h), (ref_out, ref_h) = scratch(x, h0), reference(x, h0)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h, ref_h)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("one_hot", [False, True])
def test_forward_shapes_and_state_carry(cell, one_hot):
    model = CharRNN(VOCAB, cell=cell, embed_size=8, hidden_size=16, num_layers=2, one_hot=one_hot).eval()
    ids = torch.randint(len(model.vocab), (3, 10))
    logits, state = model(ids)
    assert logits.shape == (3, 10, len(model.vocab))
    # Feeding the text in two pieces with the state carried is the same as one pass.
    first, mid = model(ids[:, :4])
    second, _ = model(ids[:, 4:], mid)
    torch.testing.assert_close(torch.cat([first, second], 1), logits)


@pytest.mark.parametrize("cell", CELLS)
def test_save_and_load_round_trip_is_exact(tmp_path, cell):
    model = CharRNN(VOCAB, cell=cell, embed_size=8, hidden_size=16, head_size=4)
    model.save_pretrained(tmp_path)
    assert {"model.safetensors", "config.json", "README.md"} <= {p.name for p in tmp_path.iterdir()}
    loaded = CharRNN.from_pretrained(tmp_path)
    assert loaded.vocab == model.vocab and loaded.cell == cell
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.fixture
def saved(tmp_path):
    CharRNN(VOCAB, cell="gru", embed_size=8, hidden_size=16).save_pretrained(tmp_path)
    return tmp_path


def test_missing_files_are_named(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="model.safetensors missing"):
        CharRNN.from_pretrained(saved)
    with pytest.raises(ModelFileError, match="no model folder"):
        CharRNN.from_pretrained(saved / "nothing-here")


def test_truncated_weights_are_reported(saved):
    path = saved / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        CharRNN.from_pretrained(saved)


def test_vocabulary_that_does_not_match_the_weights(saved):
    config = json.loads((saved / "config.json").read_text())
    config["vocab"]["chars"] = config["vocab"]["chars"][:-2]
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=r"embed.weight has shape .* config.json implies"):
        CharRNN.from_pretrained(saved)


def test_sizes_that_do_not_match_the_weights(saved):
    config = json.loads((saved / "config.json").read_text())
    config["hidden_size"] = 32
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="does not match its config.json"):
        CharRNN.from_pretrained(saved)


def test_missing_and_extra_weights(saved):
    model = CharRNN.from_pretrained(saved)
    state = {k: v for k, v in model.state_dict().items() if k != "head.bias"}
    state["extra"] = torch.zeros(1)
    save_file(state, saved / "model.safetensors")
    with pytest.raises(ModelFileError, match="missing weight head.bias; unexpected weight extra"):
        CharRNN.from_pretrained(saved)


def test_pickled_weights_are_never_loaded(saved):
    model = CharRNN.from_pretrained(saved)
    (saved / "model.safetensors").unlink()
    torch.save(model.state_dict(), saved / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match="model.safetensors missing"):
        CharRNN.from_pretrained(saved)


def test_broken_config(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not readable JSON"):
        CharRNN.from_pretrained(saved)
    (saved / "config.json").write_text(json.dumps({"vocab": VOCAB, "cell": "transformer"}))
    with pytest.raises(ModelFileError, match="unknown cell 'transformer'"):
        CharRNN.from_pretrained(saved)


def test_a_model_grown_by_new_characters_writes_and_scores_as_before(tiny_model_dir):
    """The copy made to fine-tune on a text with new characters: the known ones keep their probabilities, the new
    ones share what <unk> had, and greedy writing is unchanged."""
    model = CharRNN.from_pretrained(tiny_model_dir).eval()
    model.mix_counts(None, 0.0)  # the network alone: the grown copy carries no count models
    new = [c for c in "龘😀ж" if c not in model.vocab]
    grown = model.with_characters("龘😀ж分" + "".join(model.vocab.chars[:3]))
    assert sorted(grown.vocab.chars) == sorted(model.vocab.chars + new)
    assert grown.count_weight == grown.lexicon_weight == 0 and grown.counts is None
    ids = model.vocab.encode("分开\n我")
    with torch.no_grad():
        before = model(torch.tensor([ids]))[0].softmax(-1)[0]
        after = grown(torch.tensor([grown.vocab.encode("分开\n我")]))[0].softmax(-1)[0]
    known = torch.tensor([grown.vocab.stoi[c] for c in model.vocab.chars])
    torch.testing.assert_close(after[:, known], before[:, 1:])
    shared = torch.tensor([grown.vocab.unk_id] + [grown.vocab.stoi[c] for c in new])
    torch.testing.assert_close(after[:, shared].sum(-1), before[:, model.vocab.unk_id])
    torch.testing.assert_close(after[:, shared], after[:, shared[:1]].expand(-1, len(shared)))
    assert grown.generate("分开", 40, temperature=0) == model.generate("分开", 40, temperature=0)
    assert grown.prior.sum().item() == pytest.approx(1.0)
