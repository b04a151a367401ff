"""Training on one process against two (torchrun, gloo) on this machine's CPUs: the default LSTM, Jay Chou text.

python -m bench.training_processes   (an epoch a run, the setups alternating for 3 rounds, each one's best kept)

Both setups take the same steps on the same global batch; what differs is who computes it: one process with
every core's threads, or each process half the rows on its own cores, plus averaging the gradients every step.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import JAYCHOU, table

ROUNDS = 3


def chars_per_second(processes: int, folder: Path) -> float:
    """One epoch of the default LSTM; the rate the run measured itself (training steps only)."""
    launch = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
                                 if processes > 1 else [])
    out = folder / f"p{processes}"
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, os.cpu_count() // processes))}
    subprocess.run([*launch, "-m", "training", "--corpus", str(JAYCHOU), "--out", str(out), "--checkpoint",
                    str(folder / f"p{processes}.pt"), "--epochs", "1", "--no-progress"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())["chars_per_second"]


def main() -> None:
    best = {1: 0.0, 2: 0.0}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(ROUNDS):
            for processes in best:
                best[processes] = max(best[processes], chars_per_second(processes, Path(folder)))
    table(f"Training the default LSTM on {os.cpu_count()} CPUs, global batch 32, best of {ROUNDS} alternating epochs",
          ["processes", "threads each", "chars/s", "vs one process"],
          [[n, max(1, os.cpu_count() // n), round(rate), rate / best[1]] for n, rate in best.items()])


if __name__ == "__main__":
    main()
