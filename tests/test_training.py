import dataclasses
import json
import math
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from charrnn import CharRNN
from charrnn.counts import Bigram
from conftest import tiny_config
from charrnn.evaluate import fair_perplexity
from training.data import split
from hub_card.write import write_card
from training import objective
from training.objective import distilled_loss, teacher_targets
from training.train import CharTask, smoothed_loss, train


def test_trained_folder_is_hub_ready_with_metrics(tiny_model_dir, lyrics_file):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "metrics.json"} <= names
    metrics = json.loads((tiny_model_dir / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["best_epoch"] in (1, 2)
    assert metrics["network_val_ppl"] == min(h["val_ppl"] for h in metrics["history"])
    assert 0 <= metrics["count_weight"] + metrics["lexicon_weight"] < 1
    assert metrics["val_ppl"] <= metrics["network_val_ppl"]
    assert metrics["chars_per_second"] > 0 and metrics["train_seconds"] > 0
    assert metrics["unigram_ppl"] > metrics["bigram_ppl"] > 1
    # It learned something: held-out text is far likelier than under the same network untrained.
    trained = CharRNN.from_pretrained(tiny_model_dir)
    untrained = CharRNN(**{**json.loads((tiny_model_dir / "config.json").read_text()), "count_weight": 0.0,
                           "lexicon_weight": 0.0})
    _, val = split(lyrics_file.read_text(encoding="utf-8"))
    assert fair_perplexity(trained, val) == pytest.approx(metrics["val_ppl"])
    assert metrics["val_ppl"] < 0.5 * fair_perplexity(untrained, val)
    assert metrics["history"][1]["train_ppl"] < metrics["history"][0]["train_ppl"]


def gradient_norms(cfg):
    norms = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    handle = register_optimizer_step_pre_hook(record)
    try:
        train(cfg)
    finally:
        handle.remove()
    return norms


def test_clipping_bounds_the_global_gradient_norm(lyrics_file, tmp_path):
    unclipped = gradient_norms(tiny_config(lyrics_file, tmp_path / "a", clip=1e9, epochs=1))
    clipped = gradient_norms(tiny_config(lyrics_file, tmp_path / "b", clip=0.05, epochs=1))
    assert max(unclipped) > 0.05  # so the bound below is really the clipping at work
    assert max(clipped) <= 0.05 * (1 + 1e-4)


def test_a_seed_makes_a_cpu_run_repeatable(lyrics_file, tmp_path):
    for name in ("a", "b"):
        train(tiny_config(lyrics_file, tmp_path / name, epochs=1, sampler="sequential"))
    a, b = (CharRNN.from_pretrained(tmp_path / name).state_dict() for name in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_after_a_kill_gives_the_same_weights(lyrics_file, tmp_path):
    whole = tiny_config(lyrics_file, tmp_path / "whole", epochs=4, patience=10)
    train(whole)
    killed = tiny_config(lyrics_file, tmp_path / "killed", epochs=4, patience=10)
    args = [sys.executable, "-m", "training", "--corpus", killed.corpus, "--out", killed.out,
            "--checkpoint", killed.checkpoint, "--epochs", "4", "--patience", "10", "--no-progress",
            "--embed-size", "16", "--hidden-size", "32", "--batch-size", "16", "--num-steps", "16",
            "--sample-length", "10"]
    process = subprocess.Popen(args)
    deadline = time.time() + 120
    while not killed.checkpoint_path.exists() and time.time() < deadline:  # killed once an epoch is saved
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert killed.checkpoint_path.exists() and not (tmp_path / "killed" / "model.safetensors").exists()
    assert subprocess.run(args + ["--resume"]).returncode == 0
    a, b = (CharRNN.from_pretrained(tmp_path / name).state_dict() for name in ("whole", "killed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_checkpoint_of_other_settings(lyrics_file, tmp_path):
    train(tiny_config(lyrics_file, tmp_path / "m", epochs=1))
    with pytest.raises(ValueError, match="other settings.*hidden_size"):
        train(tiny_config(lyrics_file, tmp_path / "m", epochs=2, hidden_size=48, resume=True))


def test_time_budget_stops_training_within_an_epoch(lyrics_file, tmp_path):
    """The budget is checked after every step: a run whose first epoch would outlast it stops in that epoch and
    exports what it measured there."""
    metrics = train(tiny_config(lyrics_file, tmp_path / "m", epochs=50, patience=50, max_minutes=0.001,
                                batch_size=2, num_steps=8))  # hundreds of steps an epoch: longer than the budget
    assert 0 < metrics["epochs"] < 1 and len(metrics["history"]) == 1 and math.isfinite(metrics["val_ppl"])
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_a_reported_run_measures_within_epochs_and_stops_when_asked(lyrics_file, tmp_path):
    """With eval_seconds, points come within an epoch too, each with a sample; a stop set from the report's side
    ends the run at the next step, and the exported network is the best one measured."""
    events, stop = [], threading.Event()

    def report(event):
        events.append(event)
        if sum(e["event"] == "point" for e in events) == 4:
            stop.set()

    metrics = train(tiny_config(lyrics_file, tmp_path / "m", epochs=50, patience=50, eval_seconds=1e-9,
                                sample_prefixes=["我"]), report, stop)
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "point", "point", "point", "point", "saving"]
    start, points = events[0], events[1:-1]
    assert start["bigram_ppl"] < start["unigram_ppl"] and start["params"] == metrics["params"]
    assert [p["step"] for p in points] == [1, 2, 3, 4]  # a point after every step: eval_seconds is tiny
    assert all(0 < p["epoch"] < 1 for p in points) and points[-1]["chars"] == 4 * 16 * 16
    assert all(set(p["samples"]) == {"我"} and len(p["samples"]["我"]) == 10 for p in points)
    assert metrics["network_val_ppl"] == min(p["val_ppl"] for p in points)
    assert metrics["steps"] == 4 and metrics["history"] == [{k: p[k] for k in metrics["history"][0]} for p in points]


def test_a_run_from_a_trained_model_grows_its_vocabulary_and_counts_anew(tiny_model_dir, lyrics_file, tmp_path):
    """--init-from: the trained network, its settings and its vocabulary grown by the new text's characters; at the
    start it already scores the new text as the trained network did (the new characters as <unk>), and its
    bigram is counted on the new text; the lexicon it mixed in is kept, its share fitted anew."""
    trained = CharRNN.from_pretrained(tiny_model_dir)
    new = "".join(c for c in "ΑΒΓΔΕΖΗΘ" if c not in trained.vocab)
    text = lyrics_file.read_text(encoding="utf-8")
    corpus = tmp_path / "new.txt"
    corpus.write_text("\n".join(f"{line}{new[i % len(new)] * 2}" for i, line in enumerate(text.splitlines())),
                      encoding="utf-8")
    events = []
    metrics = train(tiny_config(corpus, tmp_path / "m", epochs=1, hidden_size=8, init_from=str(tiny_model_dir)),
                    events.append)
    tuned = CharRNN.from_pretrained(tmp_path / "m")
    assert set(tuned.vocab.chars) - set(trained.vocab.chars) == set(new)
    assert events[0]["new_characters"] == len(new) and events[0]["vocab_size"] == len(tuned.vocab)
    assert metrics["train_config"]["hidden_size"] == trained.rnn.hidden_size == tuned.rnn.hidden_size  # not 8
    assert tuned.lexicon is not None and tuned.counts is not None
    train_text, val_text = split(corpus.read_text(encoding="utf-8"))
    counted = Bigram.count(train_text).tune(val_text)
    assert (tuned.counts.pairs, tuned.counts.weight) == (counted.pairs, counted.weight)
    assert metrics["val_ppl"] < 0.8 * metrics["bigram_ppl"]


def test_the_cli_continues_a_trained_model(tiny_model_dir, lyrics_file, tmp_path):
    done = subprocess.run([sys.executable, "-m", "training", "--corpus", str(lyrics_file), "--out", str(tmp_path / "m"),
                           "--init-from", str(tiny_model_dir), "--epochs", "1", "--batch-size", "16", "--num-steps",
                           "16", "--checkpoint", str(tmp_path / "m.pt"), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert CharRNN.from_pretrained(tmp_path / "m").vocab.chars == CharRNN.from_pretrained(tiny_model_dir).vocab.chars
    refused = subprocess.run([sys.executable, "-m", "training", "--corpus", str(lyrics_file), "--out",
                              str(tmp_path / "n"), "--init-from", str(tmp_path / "missing")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "error:" in refused.stderr and "Traceback" not in refused.stderr


def test_smoothing_pulls_the_optimum_toward_the_unigram():
    prior = torch.tensor([0.7, 0.2, 0.1])
    target = torch.tensor([2])
    plain, _ = smoothed_loss(torch.zeros(1, 3), target, 0.0, prior)
    assert plain.item() == pytest.approx(math.log(3))
    best = torch.log(0.6 * torch.tensor([0.0, 0.0, 1.0]) + 0.4 * prior)[None].requires_grad_()
    loss, hard = smoothed_loss(best, target, 0.4, prior)
    loss.backward()
    assert best.grad.abs().max() < 1e-6  # (1 - e) one-hot + e * prior is where the smoothed loss is lowest
    assert hard.item() == pytest.approx(-math.log(0.6 + 0.4 * 0.1))


def test_bf16_autocast_trains_fp32_weights_that_learn(lyrics_file, tmp_path):
    """--bf16 runs the products in bfloat16 but keeps and saves fp32 weights, and the model still learns; the loss
    really went through bf16 (its weights differ from the fp32 run's)."""
    plain = train(tiny_config(lyrics_file, tmp_path / "fp32", epochs=1, mix_counts=False))
    half = train(tiny_config(lyrics_file, tmp_path / "bf16", epochs=1, mix_counts=False, bf16=True))
    model = CharRNN.from_pretrained(tmp_path / "bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert half["val_ppl"] < 1.1 * plain["val_ppl"]  # as good as fp32, give or take rounding
    fp32 = CharRNN.from_pretrained(tmp_path / "fp32")
    assert not torch.equal(model.head.weight, fp32.head.weight)


def teacher_distance(student: CharRNN, taught: torch.Tensor, ids: torch.Tensor) -> float:
    """KL divergence of the student's network from the teacher's distributions, over the text ids: the
    cross-entropy the distillation minimises, less the teacher's own entropy."""
    with torch.inference_mode():
        logits, _ = student.eval()(ids[None])
    p = taught.float()
    return distilled_loss(logits[0], taught).item() + (p * p.clamp_min(1e-12).log()).sum(-1).mean().item()


def test_the_teachers_targets_are_its_distributions_after_each_prefix(tiny_model_dir, lyrics_file):
    """Read in one pass with the state carried across chunks: position i holds what the teacher expects after
    reading the first i + 1 characters, a distribution."""
    teacher = CharRNN.from_pretrained(tiny_model_dir)
    ids = torch.tensor(teacher.vocab.encode(lyrics_file.read_text(encoding="utf-8")))
    taught = teacher_targets(teacher, ids)
    assert taught.shape == (len(ids), len(teacher.vocab)) and len(ids) > 4096  # more than one chunk
    assert torch.allclose(taught.float().sum(-1), torch.ones(len(ids)), atol=3e-3)
    with torch.inference_mode():
        for i in (0, 100, 4095, 4096, len(ids) - 1):
            logits, _ = teacher(ids[None, :i + 1])
            assert torch.allclose(taught[i].float(), logits[0, -1].softmax(-1), atol=1e-3)


def test_each_batch_pairs_a_target_with_the_teachers_distribution_for_it(tiny_model_dir, lyrics_file, tmp_path):
    """With one-hot 'teacher' rows of the true next character, every batch's taught rows name its targets."""
    cfg = tiny_config(lyrics_file, tmp_path / "student", teacher=str(tiny_model_dir), unk_dropout=0)
    train_text, val_text = split(lyrics_file.read_text(encoding="utf-8"))
    task = CharTask(cfg, CharRNN.from_pretrained(tiny_model_dir).vocab, train_text, val_text)
    task.taught = torch.nn.functional.one_hot(task.ids.roll(-1), len(task.vocab)).half()
    batches, _ = task.batches(torch.Generator().manual_seed(0))
    for x, y, taught in batches:
        assert taught.shape == (*y.shape, len(task.vocab))
        assert torch.equal(taught.argmax(-1), y)


def test_a_student_learns_its_teachers_distribution(tiny_model_dir, lyrics_file, tmp_path):
    """The same RNN trained on the same batches lands nearer the teacher with it than without, and its card says
    who taught it."""
    teacher = CharRNN.from_pretrained(tiny_model_dir)
    train_text, _ = split(lyrics_file.read_text(encoding="utf-8"))
    ids = torch.tensor(teacher.vocab.encode(train_text))
    taught = teacher_targets(teacher, ids)
    alone = tiny_config(lyrics_file, tmp_path / "alone", cell="rnn", mix_counts=False)
    train(alone)
    train(dataclasses.replace(alone, out=str(tmp_path / "taught"), checkpoint=str(tmp_path / "taught.pt"),
                              teacher=str(tiny_model_dir), distill=1.0))
    near, far = (teacher_distance(CharRNN.from_pretrained(tmp_path / name), taught, ids) for name in ("taught", "alone"))
    assert near < 0.7 * far, (near, far)
    card = write_card(tmp_path / "taught").text
    assert f"`{tiny_model_dir.name}`, trained first on the same split" in card and "100% of the loss" in card
    assert "learned from a teacher" not in write_card(tmp_path / "alone").text


def test_a_teacher_must_fit(tiny_model_dir, english_model_dir, lyrics_file, tmp_path):
    with pytest.raises(ValueError, match="another vocabulary"):
        train(tiny_config(lyrics_file, tmp_path / "a", teacher=str(english_model_dir)))
    with pytest.raises(ValueError, match="from 0 to 1"):
        train(tiny_config(lyrics_file, tmp_path / "b", teacher=str(tiny_model_dir), distill=1.5))
    with pytest.raises(ValueError, match="for character models"):
        train(tiny_config(lyrics_file, tmp_path / "c", teacher=str(tiny_model_dir), task="next-line"))
    with pytest.raises(ValueError):  # a folder that is not there: ModelFileError, which the CLI reports plainly
        train(tiny_config(lyrics_file, tmp_path / "d", teacher=str(tmp_path / "missing")))


def test_a_teacher_whose_distributions_would_not_fit_in_memory_is_refused(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(objective, "MAX_TAUGHT_BYTES", 1000)
    with pytest.raises(ValueError, match="GiB"):
        teacher_targets(CharRNN.from_pretrained(tiny_model_dir), torch.zeros(1000, dtype=torch.long))
