"""Scoring text: against a hand computation, the fair rule, context, long and odd text, the CLI."""
import math
import subprocess
import sys
import time

import pytest
import torch

from charrnn import CharRNN, Vocab
from charrnn.evaluate import OOV_PENALTY, fair_perplexity

VOCAB = Vocab.build("分开不分开我想要你的微笑\n", min_count=1)


@pytest.fixture(scope="module")
def toy() -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(VOCAB.to_dict(), cell="gru", embed_size=8, hidden_size=16).eval()


def by_hand(model, text: str, context: str):
    """Each character's probability from one full forward pass over context + text (fair rule for <unk>)."""
    ids = model.vocab.encode(context + text)
    with torch.no_grad():
        probs = model(torch.tensor([ids]))[0][0].softmax(-1)
    rows = probs[len(context) - 1:len(ids) - 1]
    targets = ids[len(context):]
    return [(row, target, float(row[target]) / (10000 if target == 0 else 1)) for row, target in zip(rows, targets)]


def test_score_matches_a_hand_computation(toy):
    text = "我想要你😀的微笑"  # 😀 is outside the vocabulary
    score = toy.score(text, context="分开\n")
    expected = by_hand(toy, text, "分开\n")
    assert score.count == len(text) == len(score.chars)
    nll = -sum(math.log(p) for _, _, p in expected)
    assert score.nll == pytest.approx(nll, rel=1e-5)
    assert score.perplexity == pytest.approx(math.exp(nll / len(text)), rel=1e-5)
    for char, c, (row, target, prob) in zip(text, score.chars, expected):
        assert c.char == char and c.prob == pytest.approx(prob, rel=1e-4)
        others = row.clone()
        others[0] = 0  # <unk> is no character to expect
        assert c.rank == 1 + int((others > prob).sum())
        assert len(c.alternatives) == 5 and char not in [a for a, _ in c.alternatives]
        assert [p for _, p in c.alternatives] == sorted((p for _, p in c.alternatives), reverse=True)
        others[target] = 0
        assert c.alternatives[0][1] == pytest.approx(float(others.max()), rel=1e-4)
    unknown = score.chars[text.index("😀")]
    assert -math.log(unknown.prob) == pytest.approx(-math.log(float(expected[4][0][0])) + OOV_PENALTY, rel=1e-5)


def test_the_first_character_is_scored_given_a_line_start_or_the_context(toy):
    plain, primed = toy.score("我想要"), toy.score("我想要", context="分开不")
    assert plain.count == primed.count == 3
    assert plain.chars[0].prob == pytest.approx(by_hand(toy, "我想要", "\n")[0][2], rel=1e-5)
    assert plain.chars[0].prob != pytest.approx(primed.chars[0].prob, rel=1e-3)


def test_long_text_scores_in_chunks_like_one_pass(toy):
    text = "分开不分开我想要你的微笑\n" * 100  # 1,300 characters: three chunks of 512
    score = toy.score(text, context="我")
    expected = by_hand(toy, text, "我")
    assert score.nll == pytest.approx(-sum(math.log(p) for _, _, p in expected), rel=1e-4)
    assert fair_perplexity(toy, text) == pytest.approx(toy.score(text, details=False).perplexity)


@pytest.mark.slow
def test_a_million_characters_score_in_bounded_time_and_memory(toy):
    started = time.monotonic()
    score = toy.score("分开我想要你的微笑😀\x07" * 100_000)
    assert score.count == 1_100_000 and math.isfinite(score.perplexity)
    assert score.probs.nbytes + score.alt_ids.nbytes + score.alt_probs.nbytes + score.ranks.nbytes < 60e6
    assert time.monotonic() - started < 120


@pytest.mark.parametrize("text, context", [("", ""), (None, ""), ("分", 5)])
def test_bad_input_is_refused_clearly(toy, text, context):
    with pytest.raises(ValueError, match="nothing to score|must be text"):
        toy.score(text, context=context)


def test_one_character_and_control_characters(toy):
    assert toy.score("分").count == 1
    odd = toy.score("\x00\x07\u200b😀")
    assert odd.count == 4 and all(c.prob > 0 for c in odd.chars)


def test_the_cli_names_the_most_surprising_characters(tiny_model_dir, tmp_path):
    lyric = tmp_path / "lyric.txt"
    lyric.write_text("窗外的麻雀\n在电线杆上多嘴\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "charrnn", "score", "--model", str(tiny_model_dir), "--text", str(lyric),
                           "--top", "3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    model = CharRNN.from_pretrained(tiny_model_dir)
    score = model.score(lyric.read_text(encoding="utf-8"))
    assert lines[0].startswith(f"perplexity {score.perplexity:.2f} over 14 characters")
    listed = [line for line in lines if line.startswith("  line ")]
    assert len(listed) == 3 and "expected" in listed[0]
    first = score.most_surprising(1)[0]
    assert repr(score.text[first]) in listed[0]
    missing = subprocess.run([sys.executable, "-m", "charrnn", "score", "--model", str(tiny_model_dir), "--text",
                              str(tmp_path / "none.txt")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "error: no file" in missing.stderr
