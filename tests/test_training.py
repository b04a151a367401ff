import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from charrnn import CharRNN
from conftest import tiny_config
from charrnn.evaluate import fair_perplexity
from training.data import split
from training.train import smoothed_loss, train


def test_trained_folder_is_hub_ready_with_metrics(tiny_model_dir, lyrics_file):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "metrics.json"} <= names
    metrics = json.loads((tiny_model_dir / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["best_epoch"] in (1, 2)
    assert metrics["network_val_ppl"] == min(h["val_ppl"] for h in metrics["history"])
    assert 0 <= metrics["count_weight"] < 1 and metrics["val_ppl"] <= metrics["network_val_ppl"]
    assert metrics["chars_per_second"] > 0 and metrics["train_seconds"] > 0
    assert metrics["unigram_ppl"] > metrics["bigram_ppl"] > 1
    # It learned something: held-out text is far likelier than under the same network untrained.
    trained = CharRNN.from_pretrained(tiny_model_dir)
    untrained = CharRNN(**{**json.loads((tiny_model_dir / "config.json").read_text()), "count_weight": 0.0})
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


def test_time_budget_stops_training(lyrics_file, tmp_path):
    metrics = train(tiny_config(lyrics_file, tmp_path / "m", epochs=50, patience=50, max_minutes=0.001))
    assert metrics["epochs"] == 1 and math.isfinite(metrics["val_ppl"])


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
