"""Shared fixtures: small real corpora cut from ../shared/data and tiny models really trained on them."""
import os
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.common import cpu_ticks  # noqa: E402
from charrnn import Options  # noqa: E402
from training.train import DATA_DIR, TrainConfig, train  # noqa: E402


def forward_probs(model, ids: list[int]) -> torch.Tensor:
    """The model's probability of each next character [len(ids), V] from one full forward pass, by hand: the
    network's softmax, mixed with the count models' rows after each character where the model has them."""
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]))
    probs = logits[0].softmax(-1)
    parts = [(w, counts) for w, counts in ((model.count_weight, model.counts), (model.lexicon_weight, model.lexicon)) if w]
    mixed = (1 - sum(w for w, _ in parts)) * probs
    return mixed + sum(w * counts.table(model.vocab)[ids] for w, counts in parts) if parts else probs


def loop_stream(loop, prefix: str, length: int, details: bool = False, every=None, **options):
    """A decoding loop's stream of lists of pieces for one request, as the engine's Variant.stream reads it."""
    [request] = loop.submit([prefix], length, [Options(**options)], details, every)
    return iter(request)


def pieces_text(pieces) -> str:
    """The text of a decoding loop's stream: lists of pieces."""
    return "".join(piece for batch in pieces for piece in batch)


def count_steps(loop):
    """A function giving the steps a loop of this process has decoded since this call (the loop keeps no count)."""
    if not hasattr(loop.batch.step, "count"):
        step = loop.batch.step

        def counted(*args, **kwargs):
            counted.count += 1
            return step(*args, **kwargs)
        counted.count = 0
        loop.batch.step = counted
    counted, start = loop.batch.step, loop.batch.step.count
    return lambda: counted.count - start


def cpu_used(pid: int, seconds: float) -> int:
    """Clock ticks the process uses over the next `seconds`: a decoding process writing uses all of them, an idle one
    none (a tick may fall to its housekeeping)."""
    before = cpu_ticks(pid)
    time.sleep(seconds)
    return cpu_ticks(pid) - before


def wait_until(condition, deadline: float = 20.0, message: str = "timed out") -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, message
        time.sleep(0.002)


def cut(name: str, chars: int) -> str:
    return (DATA_DIR / name).read_text(encoding="utf-8")[:chars]


@pytest.fixture(scope="session")
def lyrics_file(tmp_path_factory) -> Path:
    """The first 6,000 characters of the Jay Chou corpus (read at test time, never committed)."""
    path = tmp_path_factory.mktemp("corpus") / "lyrics.txt"
    path.write_text(cut("jaychou_lyrics.txt", 6000), encoding="utf-8")
    return path


def tiny_config(corpus: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(corpus=str(corpus), out=str(out), cell="lstm", embed_size=16, hidden_size=32, epochs=2,
                    batch_size=16, num_steps=16, checkpoint=str(out.parent / f"{out.name}.pt"), progress=False,
                    sample_length=10)
    return TrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, lyrics_file) -> Path:
    """A Hub-ready folder of a small LSTM trained for two epochs on lyrics_file, mixing in the bigram and the
    lexicon of Chinese as the lyrics models do."""
    out = tmp_path_factory.mktemp("models") / "jaychou-lstm"
    train(tiny_config(lyrics_file, out, lexicon="zh"))
    return out


@pytest.fixture(scope="session")
def english_model_dir(tmp_path_factory) -> Path:
    """A tiny GRU on the first 3,000 characters of The Time Machine (one epoch, a few seconds)."""
    root = tmp_path_factory.mktemp("english")
    corpus = root / "timemachine.txt"
    corpus.write_text(cut("timemachine.txt", 3000), encoding="utf-8")
    train(tiny_config(corpus, root / "timemachine-gru", cell="gru", epochs=1))
    return root / "timemachine-gru"


@pytest.fixture(scope="session")
def next_line_dir(tmp_path_factory, lyrics_file) -> Path:
    """A Hub-ready folder of a small attention next-line model trained on lyrics_file."""
    out = tmp_path_factory.mktemp("models") / "jaychou-next-line"
    train(next_line_config(lyrics_file, out))
    return out


@pytest.fixture(scope="session")
def fused_dir(tmp_path_factory, lyrics_file, tiny_model_dir) -> Path:
    """A small attention next-line model fused with tiny_model_dir's LSTM (its vocabulary: the same min_count)."""
    out = tmp_path_factory.mktemp("models") / "jaychou-next-line-fused"
    train(next_line_config(lyrics_file, out, min_count=2, fuse_with=str(tiny_model_dir)))
    return out


def next_line_config(corpus: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(task="next-line", context="attention", epochs=5, lr=0.01, embed_size=32, hidden_size=64,
                    min_count=1)  # every character in the vocabulary: 6,000 characters leave many seen once
    return tiny_config(corpus, out, **{**settings, **overrides})
