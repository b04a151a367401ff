"""Training under torchrun: two real CPU processes (gloo) against one, on the same global batch.

Dropout of every kind is off, so the two runs draw nothing at random but the shared batches; what is left
between them is the order of float sums (two half-batch gradients averaged instead of one whole-batch mean).
Measured: at most 2.5e-6 in any weight after three epochs; the tolerance below is 40 times that.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
EXACT = ["--dropout", "0", "--embed-dropout", "0", "--weight-drop", "0", "--no-progress", "--embed-size", "16",
         "--hidden-size", "32", "--batch-size", "16", "--num-steps", "16", "--sample-length", "10", "--patience", "10"]


def training(tmp_path, name, *flags, processes=1, corpus):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    args = [*(command if processes > 1 else [sys.executable]), "-m", "training", "--corpus", str(corpus),
            "--out", str(tmp_path / name), "--checkpoint", str(tmp_path / f"{name}.pt"), *EXACT, *flags]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def assert_same_weights(a, b):
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert first.keys() == second.keys()
    worst = max((first[k] - second[k]).abs().max().item() for k in first)
    assert worst <= TOLERANCE, f"weights differ by {worst}"


def metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def one_process(lyrics_file, tmp_path_factory):
    """Three epochs in one process, the sequential sampler: the run the distributed ones must match."""
    out = tmp_path_factory.mktemp("one")
    assert training(out, "m", "--epochs", "3", "--sampler", "sequential", corpus=lyrics_file).returncode == 0
    return out / "m"


def test_two_processes_reach_the_weights_of_one(one_process, lyrics_file, tmp_path):
    run = training(tmp_path, "m", "--epochs", "3", "--sampler", "sequential", processes=2, corpus=lyrics_file)
    assert run.returncode == 0, run.stderr
    assert_same_weights(one_process, tmp_path / "m")
    one, two = metrics(one_process), metrics(tmp_path / "m")
    assert two["processes"] == 2 and one["processes"] == 1
    assert two["val_ppl"] == pytest.approx(one["val_ppl"], rel=1e-5)
    # The training loss is the mean over both ranks' rows, as one process sees the whole batch.
    assert [h["train_ppl"] for h in two["history"]] == pytest.approx([h["train_ppl"] for h in one["history"]], rel=1e-5)


def test_a_run_resumes_under_another_process_count(one_process, lyrics_file, tmp_path):
    """Epoch 1 in one process, epoch 2 resumed on two, epoch 3 resumed on one: the run of one process throughout."""
    for epochs, processes in ((1, 1), (2, 2), (3, 1)):
        run = training(tmp_path, "m", "--epochs", str(epochs), "--sampler", "sequential", "--resume",
                       processes=processes, corpus=lyrics_file)
        assert run.returncode == 0, run.stderr
        if epochs > 1:  # rank 0 alone speaks
            assert sum(line.startswith("resumed ") for line in run.stdout.splitlines()) == 1
    assert len(metrics(tmp_path / "m")["history"]) == 3
    assert_same_weights(one_process, tmp_path / "m")


def test_next_line_ranks_weigh_their_rows_by_their_targets(lyrics_file, tmp_path):
    """Lines differ in length, so ranks see different numbers of targets; the whole batch's mean is kept."""
    flags = ["--task", "next-line", "--epochs", "2", "--batch-size", "8"]
    one, two = (training(tmp_path, name, *flags, processes=n, corpus=lyrics_file) for name, n in (("one", 1), ("two", 2)))
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert_same_weights(tmp_path / "one", tmp_path / "two")


def test_a_batch_the_processes_cannot_share_is_refused(lyrics_file, tmp_path):
    run = training(tmp_path, "m", "--epochs", "1", "--batch-size", "15", processes=2, corpus=lyrics_file)
    assert run.returncode != 0
    assert "--batch-size 15 must be a multiple of the 2 processes" in run.stderr
    assert not (tmp_path / "m").exists()
