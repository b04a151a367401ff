"""Helpers shared by the benchmarks (and the tests that watch processes): the corpus, a model to time, a table
printer, and a process's resident memory and CPU time read from /proc."""
import time
from pathlib import Path

import torch

from charrnn import CharRNN, Vocab
from training.data import read_corpus, split
from training.train import DATA_DIR, CharTask, TrainConfig

JAYCHOU = DATA_DIR / "jaychou_lyrics.txt"


def rss_mb(pid: int) -> float | None:
    """A process's resident memory in MB, or None once it has ended."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return None


def cpu_ticks(pid: int) -> int:
    """The CPU time a process has used, in clock ticks (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def train_text() -> str:
    return split(read_corpus(JAYCHOU))[0]


def default_model(cell: str = "rnn") -> CharRNN:
    """models/jaychou-<cell> when trained, else an untrained model of the same default size (speed is the same)."""
    folder = Path("models") / f"jaychou-{cell}"
    if (folder / "model.safetensors").exists():
        return CharRNN.from_pretrained(folder)
    cfg, text = TrainConfig(cell=cell), train_text()
    vocab = Vocab.build(text, cfg.min_count, cfg.newlines)
    return CharTask(cfg, vocab, text, "").build().eval()


def best_rates(setups: dict, rounds: int) -> dict:
    """The best work per second of each setup (each call returns the work it did, in characters), the
    setups taking turns for `rounds` rounds so that a busy moment of the machine hits all alike; one
    warm-up call each first. Calls get the round number."""
    for run in setups.values():
        run(0)
    best = dict.fromkeys(setups, 0.0)
    for round_ in range(1, rounds + 1):
        for name, run in setups.items():
            start = time.perf_counter()
            work = run(round_)
            best[name] = max(best[name], work / (time.perf_counter() - start))
    return best


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[f"{c:,.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
