"""Helpers shared by the benchmarks: the corpus, a model to time, and a table printer."""
import time
from pathlib import Path

import torch

from charrnn import CharRNN, Vocab
from training.data import read_corpus, split
from training.train import DATA_DIR, TrainConfig, build_model

JAYCHOU = DATA_DIR / "jaychou_lyrics.txt"


def train_text() -> str:
    return split(read_corpus(JAYCHOU))[0]


def default_model(cell: str = "rnn") -> CharRNN:
    """models/jaychou-<cell> when trained, else an untrained model of the same default size (speed is the same)."""
    folder = Path("models") / f"jaychou-{cell}"
    if (folder / "model.safetensors").exists():
        return CharRNN.from_pretrained(folder)
    cfg, text = TrainConfig(cell=cell), train_text()
    vocab = Vocab.build(text, cfg.min_count, cfg.newlines)
    return build_model(cfg, vocab, torch.tensor(vocab.encode(text))).eval()


def best_time(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[f"{c:,.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
