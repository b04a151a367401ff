"""The next-line encoder-decoder: shapes and attention, training in the three context modes, scoring, loading,
resuming, odd input and the CLI. Small models really trained on the first 6,000 characters of the lyrics."""
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import CharRNN, ModelFileError, NextLine, Vocab
from charrnn.vocab import normalize
from charrnn.next_line import CONTEXTS
from conftest import next_line_config
from training.data import split
from training.next_line import (SHARPNESS, cross_fitted_perplexity, encode_pairs, line_pairs, pair_perplexity,
                                primed_perplexity, scored_perplexity)
from training.train import train


@pytest.fixture(scope="module")
def model(next_line_dir) -> NextLine:
    return NextLine.from_pretrained(next_line_dir)


@pytest.mark.parametrize("context", CONTEXTS)
def test_shapes_and_attention_rows(context):
    model = NextLine(Vocab(list("abc\n我你")).to_dict(), context=context, embed_size=8, hidden_size=16)
    source, lengths = torch.tensor([[1, 2, 3, 4], [2, 3, 0, 0]]), torch.tensor([4, 2])
    logits, attention = model(source, lengths, torch.tensor([[4, 1, 2], [4, 3, 3]]))
    assert logits.shape == (2, 3, len(model.vocab))
    if context != "attention":
        assert attention is None
        return
    assert attention.shape == (2, 3, 4)
    assert torch.allclose(attention.sum(-1), torch.ones(2, 3))
    assert attention[1, :, 2:].abs().max() == 0, "no attention on padding"


@pytest.mark.slow
def test_the_three_modes_train_and_beat_the_unigram(lyrics_file, next_line_dir, tmp_path):
    for context in CONTEXTS:
        out = next_line_dir if context == "attention" else tmp_path / context
        if context != "attention":
            train(next_line_config(lyrics_file, out, context=context))
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["val_ppl"] < metrics["unigram_ppl"], (context, metrics["val_ppl"], metrics["unigram_ppl"])
        assert json.loads((out / "config.json").read_text())["context"] == context


def test_held_out_perplexity_is_the_score_of_every_pair(model, lyrics_file):
    _, val = split(lyrics_file.read_text(encoding="utf-8"))
    pairs = line_pairs(val)
    scores = [model.score(b, context=a) for a, b in pairs]
    assert sum(s.count for s in scores) == sum(len(b) + 1 for _, b in pairs), "each line's break counts"
    expected = math.exp(sum(s.nll for s in scores) / sum(s.count for s in scores))
    assert pair_perplexity(model, encode_pairs(pairs, model.vocab)) == pytest.approx(expected, rel=1e-4)


def test_score_reads_the_previous_line(model):
    alone, after = model.score("窗外的麻雀"), model.score("窗外的麻雀", context="在电线杆上多嘴")
    assert alone.count == after.count == 6 and alone.text == "窗外的麻雀\n"
    assert alone.nll != after.nll
    assert [c.rank >= 1 for c in after.chars] == [True] * 6
    with pytest.raises(ValueError, match="one line"):
        model.score("two\nlines")


def test_writing_is_seeded_streamed_and_attended(model):
    text = model.next_line("窗外的麻雀", temperature=0.8, seed=3)
    assert text == "".join(char for char, _ in model.written("窗外的麻雀", temperature=0.8, seed=3))
    assert "\n" not in text and 1 <= len(text) <= 40
    same, attention = model.next_line("窗外的麻雀", temperature=0.8, seed=3, attention=True)
    assert same == text and len(attention) == len(text)
    assert all(len(row) == 5 and sum(row) == pytest.approx(1) for row in attention)
    assert len(model.next_line("窗外的麻雀", temperature=0, max_length=3)) <= 3


def test_odd_lines(model):
    assert isinstance(model.next_line("", seed=1), str), "an empty line reads as a song's start"
    assert isinstance(model.next_line("😀🎸 zz", seed=1), str), "unknown characters read as <unk>"
    text, attention = model.next_line("你" * 10_000, seed=1, max_length=5, attention=True)
    assert len(text) <= 5 and all(len(row) == 10_000 for row in attention)
    assert model.next_line("第一行\n第二行\n\n", temperature=0) == model.next_line("第二行", temperature=0), "the last line"
    for bad, message in [(dict(line=42), "must be text"), (dict(line="a", temperature=-1), "temperature"),
                         (dict(line="a", max_length=0), "max_length"), (dict(line="a", max_length=1.5), "length"), (dict(line="a", top_p=2), "top_p")]:
        with pytest.raises(ValueError, match=message):
            model.next_line(**bad)


def test_save_and_load_are_exact(model, next_line_dir, tmp_path):
    model.save_pretrained(tmp_path / "again")
    again = NextLine.from_pretrained(tmp_path / "again")
    for key, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], tensor), key
    assert again.next_line("分开", seed=2) == model.next_line("分开", seed=2)


def test_loading_is_strict(next_line_dir, tiny_model_dir, tmp_path):
    with pytest.raises(ModelFileError, match="does not match its config.json"):
        NextLine.from_pretrained(tiny_model_dir)
    with pytest.raises(ModelFileError, match="does not match its config.json"):
        CharRNN.from_pretrained(next_line_dir)
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bad / name).write_bytes((next_line_dir / name).read_bytes())
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "context": "telepathy"}))
    with pytest.raises(ModelFileError, match="context must be one of"):
        NextLine.from_pretrained(bad)


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(lyrics_file, tmp_path):
    whole = next_line_config(lyrics_file, tmp_path / "whole", epochs=2, patience=99)
    train(whole)
    halves = next_line_config(lyrics_file, tmp_path / "halves", epochs=1, patience=99)
    train(halves)
    train(next_line_config(lyrics_file, tmp_path / "halves", epochs=2, patience=99, resume=True))
    a, b = NextLine.from_pretrained(tmp_path / "whole"), NextLine.from_pretrained(tmp_path / "halves")
    for key, tensor in a.state_dict().items():
        assert torch.equal(b.state_dict()[key], tensor), key


def test_the_cli_writes_the_next_line(next_line_dir, model):
    done = subprocess.run([sys.executable, "-m", "charrnn", "next-line", "--model", str(next_line_dir), "--line",
                           "窗外的麻雀", "--temperature", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == model.next_line("窗外的麻雀", temperature=0)
    done = subprocess.run([sys.executable, "-m", "charrnn", "next-line", "--model", str(next_line_dir), "--line",
                           "x", "--temperature", "-1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "temperature" in done.stderr and "Traceback" not in done.stderr


def test_the_card_shows_the_heatmap_and_the_context_modes(next_line_dir, tmp_path):
    from hub_card.write import write_card
    from hub_card.next_line import HEATMAP_NAME
    from hub_card.push import model_commit

    folder = tmp_path / "jaychou-next-line"
    shutil.copytree(next_line_dir, folder)
    card = write_card(folder).text
    assert f"]({HEATMAP_NAME})" in card and "NextLine.from_pretrained" in card
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "Not measured" not in card and f"| this model (context attention) | {metrics['params']:,} | " in card
    assert f"the {metrics['val_pairs']:,} line pairs" in card and "| unigram |  |" in card  # training measured them
    share = metrics["attention_entropy"] / metrics["uniform_entropy"]
    assert 0 < share <= 1 and f"({share:.0%} of it)" in card
    metrics |= {"val_pairs": 12, "context_modes": [{"context": m, "params": 1000, "alone": 9.5, "fused": 8.25,
                                                    "cross_fitted": 8.5} for m in CONTEXTS]}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    card = write_card(folder, "org/charrnn-jaychou-next-line").text
    assert "| `every-step` | 1,000 | 9.5 | 8.2 | 8.5 |" in card and "12 line pairs" in card
    assert (folder / HEATMAP_NAME).stat().st_size > 1000
    assert HEATMAP_NAME in model_commit(folder, "org/charrnn-jaychou-next-line").files


@pytest.fixture(scope="module")
def fused(fused_dir) -> NextLine:
    return NextLine.from_pretrained(fused_dir)


def test_fused_with_the_character_model_alone_it_is_the_character_model_primed_with_the_line(fused_dir):
    model = NextLine.from_pretrained(fused_dir)
    language_model = model.fusion.language_model
    model.fuse(language_model, 1.0, 0.0, 1.0)
    for line, after in [("窗外的麻雀", "在电线杆上多嘴"), ("你说这一句", "很有夏天的感觉"), ("", "手中的铅笔")]:
        primed = language_model.score(after + "\n", context="\n" + line + "\n", details=False).nll
        assert model.score(after, context=line, details=False).nll == pytest.approx(primed, rel=1e-5)


def test_a_fused_distribution_is_the_parts_mixed(fused_dir):
    """Every character's fair probability, one outside the vocabulary too, is the shares times the parts'."""
    model = NextLine.from_pretrained(fused_dir)
    language_model, line, after = model.fusion.language_model, "窗外的麻雀😀", "在电线杆上😀多嘴"
    decoder, primed, cache = (model.fuse(language_model, *fusion, 0.3).score(after, context=line).probs
                              for fusion in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)))
    fused = model.fuse(language_model, 0.6, 0.1, 0.3).score(after, context=line).probs
    assert len(fused) == len(after) + 1 and cache[5] > 1e-3, "the cache copies 😀 from the line, whole"
    assert fused == pytest.approx(0.3 * decoder + 0.6 * primed + 0.1 * cache, rel=1e-4)


def test_the_cache_copies_from_the_line(fused_dir):
    model = NextLine.from_pretrained(fused_dir)
    language_model, line = model.fusion.language_model, "窗外的麻雀在电线杆上"
    model.fuse(language_model, 0.0, 1.0, 1.0)  # the cache alone
    log_probs, _, attention = model.read(line, line + "\n")
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(len(line) + 1), atol=1e-4)
    never_seen = model.vocab.stoi["爱"]
    assert log_probs[1:, never_seen].exp().max() < 1e-6, "the cache holds only what it has read"
    assert model.score(line, context=line).perplexity < model.score("你说这一句很有夏天", context=line).perplexity
    assert attention.shape == (len(line) + 1, len(line))
    assert torch.allclose(attention.sum(-1), torch.ones(len(line) + 1), atol=1e-5)


def test_a_fused_model_writes_seeded_lines_with_attention_on_the_line(fused):
    text, attention = fused.next_line("窗外的麻雀", temperature=0.8, seed=3, attention=True)
    assert text == fused.next_line("窗外的麻雀", temperature=0.8, seed=3)
    assert all(len(row) == 5 and sum(row) == pytest.approx(1, abs=1e-5) for row in attention)
    assert len({tuple(round(w, 3) for w in row) for row in attention}) > 1, "not one row repeated"
    lines = ("窗外的麻雀", "", "😀", "你" * 10_000)
    assert all(fused.next_line(line, seed=seed) for line in lines for seed in range(8)), "a next line is never empty"
    text, attention = fused.next_line("😀🎸 zz\n\n", seed=1, attention=True)
    assert all(len(row) == len("😀🎸 zz") and sum(row) == pytest.approx(1, abs=1e-5) for row in attention)


def test_fusion_saves_loads_and_moves_with_the_model(fused, fused_dir, tmp_path):
    assert (fused_dir / "language_model" / "model.safetensors").is_file()
    assert (fused_dir / "language_model" / "bigram.safetensors").is_file()
    fused.save_pretrained(tmp_path / "again")
    again = NextLine.from_pretrained(tmp_path / "again")
    assert again.shares == fused.shares and again.cache_sharpness == fused.cache_sharpness
    assert again.next_line("分开", seed=2) == fused.next_line("分开", seed=2)
    assert again.score("在电线杆上多嘴", context="窗外的麻雀").nll == fused.score("在电线杆上多嘴", context="窗外的麻雀").nll
    again.double()
    assert next(again.fusion.language_model.parameters()).dtype == torch.float64, "to() moves the character model"
    shutil.rmtree(tmp_path / "again" / "language_model")
    with pytest.raises(ModelFileError, match="no model folder"):
        NextLine.from_pretrained(tmp_path / "again")


def test_a_fused_folder_whose_character_model_does_not_fit_is_named(fused_dir, english_model_dir, tmp_path):
    folder = tmp_path / "fused"
    shutil.copytree(fused_dir, folder)
    shutil.rmtree(folder / "language_model")
    shutil.copytree(english_model_dir, folder / "language_model")
    with pytest.raises(ModelFileError, match="its language_model/ does not fit it: .*same vocabulary"):
        NextLine.from_pretrained(folder)


def test_fusion_refuses_what_does_not_fit(fused, english_model_dir):
    language_model, before = fused.fusion.language_model, fused.shares
    for shares in [(-0.1, 0.1, 1.0), (0.7, 0.4, 1.0), (0.5, 0.1, -1.0), (math.nan, 0.1, 1.0), (True, 0.0, 1.0),
                   ("0.5", 0.1, 1.0)]:
        with pytest.raises(ValueError, match="lm_share and cache_share"):
            fused.fuse(language_model, *shares)
    with pytest.raises(ValueError, match="same vocabulary"):
        fused.fuse(CharRNN.from_pretrained(english_model_dir), 0.5, 0.1, 1.0)
    assert fused.shares == before and fused.fusion.language_model is language_model, "a refusal changes nothing"


def test_a_fused_model_is_trained_measured_and_carded(fused_dir, lyrics_file, tmp_path):
    from hub_card.push import model_commit
    from hub_card.write import write_card

    metrics = json.loads((fused_dir / "metrics.json").read_text())
    config = json.loads((fused_dir / "config.json").read_text())
    assert config["lm_share"] + config["cache_share"] <= 1 and config["cache_sharpness"] in SHARPNESS
    model = NextLine.from_pretrained(fused_dir)
    pairs = line_pairs(split(lyrics_file.read_text(encoding="utf-8"))[1])
    assert metrics["val_ppl"] == pytest.approx(scored_perplexity(model, pairs), rel=1e-6)
    assert metrics["val_ppl"] <= metrics["primed_ppl"], "the fusion can always be the primed model"
    language_model = model.fusion.language_model
    assert metrics["primed_ppl"] == pytest.approx(primed_perplexity(language_model, pairs), rel=1e-6)
    assert metrics["cross_fitted_ppl"] == pytest.approx(cross_fitted_perplexity(model, language_model, pairs), rel=1e-6)
    assert metrics["val_ppl"] == pytest.approx(scored_perplexity(model, pairs), rel=1e-6), "it keeps its own fusion"
    assert 0 < metrics["attention_entropy"] < metrics["uniform_entropy"]
    folder = tmp_path / "fused"
    shutil.copytree(fused_dir, folder)
    card = write_card(folder).text
    assert "the character model primed with the line" in card and f"{metrics['primed_ppl']:.1f}" in card
    assert f"{metrics['cross_fitted_ppl']:.1f}" in card and "language_model/" in card
    files = model_commit(folder, "org/charrnn-jaychou-next-line").files
    assert {"language_model/model.safetensors", "language_model/config.json", "language_model/bigram.safetensors"} \
        <= set(files)


def test_fusing_refuses_what_cannot_be_fused_before_training(lyrics_file, english_model_dir, tmp_path, fused_dir):
    with pytest.raises(ValueError, match="--fuse-with .*same vocabulary"):
        train(next_line_config(lyrics_file, tmp_path / "a", fuse_with=str(english_model_dir)))
    with pytest.raises(ModelFileError, match="no model folder"):
        train(next_line_config(lyrics_file, tmp_path / "b", fuse_with=str(tmp_path / "nothing")))
    with pytest.raises(ValueError, match="--fuse-with is for next-line models"):
        train(next_line_config(lyrics_file, tmp_path / "c", task="chars", fuse_with=str(english_model_dir)))
    assert not any((tmp_path / name).exists() for name in "abc"), "refused before anything was trained or written"
    model = CharRNN.from_pretrained(fused_dir / "language_model")
    for bad in ("models/jaychou-next-line", 42, model):
        with pytest.raises(ValueError, match="next_line"):
            model.rewrite("我\n你", "1", next_line=bad)


def test_any_line_gets_a_fused_next_line_and_a_finite_score(fused):
    """Any text as the line answered (unknown characters, spaces, line breaks, nothing) and any line scored after it:
    a line that is never empty nor holds a break, attention rows over the line answered, a finite fair score."""
    pieces = st.sampled_from(["窗", "外", "的", "麻雀", " ", "\n", "😀", "zz", "龘", "\t", "，"])
    texts = st.lists(pieces, max_size=12).map("".join)

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(texts, texts.filter(lambda t: "\n" not in t), st.integers(0, 2**32 - 1),
           st.sampled_from([0.0, 0.8, 1.5]))
    def check(line, after, seed, temperature):
        text, attention = fused.next_line(line, temperature, seed=seed, attention=True)
        assert text and "\n" not in text and len(text) <= 40
        columns = len(fused.source_ids(line))
        assert all(len(row) == columns and sum(row) == pytest.approx(1, abs=1e-4) for row in attention)
        score = fused.score(after, context=line, details=False)
        assert math.isfinite(score.nll) and score.count == len(normalize(after)) + 1

    check()
