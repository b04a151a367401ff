"""Reading a corpus, splitting off a validation tail, and the two minibatch samplers."""
from pathlib import Path

import torch

from charrnn import limits
from charrnn.vocab import normalize


class CorpusError(ValueError):
    """A corpus file that cannot be used: the message says why."""


def read_corpus(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); convert it to UTF-8 first") from None
    if not text.strip():
        raise CorpusError(f"{path} is empty")
    return text


def training_text(raw: bytes, name: str = "the text") -> str:
    """An uploaded or pasted text to train on, checked as untrusted input: UTF-8 text (not binary, not another
    encoding), not empty, within limits.TRAINING_TEXT characters once its line endings are unified."""
    if len(raw) > limits.TRAINING_BYTES:
        raise CorpusError(f"{name} is {len(raw):,} bytes; the most this takes is {limits.TRAINING_BYTES:,}")
    if b"\x00" in raw[:65536]:
        raise CorpusError(f"{name} is not text: it has NUL bytes, as binary files (an image, a PDF, a zip) do")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{name} is not UTF-8 text (byte {e.start:,}: {e.reason}); if it is in another encoding "
                          "(GBK, Big5, Latin-1), save it as UTF-8 first") from None
    text = normalize(text)
    controls = sum(ord(c) < 32 and c not in "\n\t" for c in text[:65536])
    if controls > len(text[:65536]) // 100:
        raise CorpusError(f"{name} is not text: {controls:,} of its first characters are control characters")
    if not text.strip():
        raise CorpusError(f"{name} is empty")
    if len(text) not in limits.TRAINING_TEXT:
        raise CorpusError(f"{name} has {len(text):,} characters; a text to train on has from {limits.TRAINING_TEXT} "
                          "(a tenth of it is held out to measure the model)")
    return text


def split(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """A contiguous tail for validation, so held-out text is text the model never saw nearby."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def random_batches(ids: torch.Tensor, batch_size: int, num_steps: int, generator: torch.Generator):
    """Shuffled, non-overlapping subsequences from a random offset: each batch independent of the last."""
    offset = int(torch.randint(num_steps, (1,), generator=generator))
    count = (len(ids) - offset - 1) // num_steps
    starts = offset + num_steps * torch.randperm(count, generator=generator)
    window = torch.arange(num_steps)
    for i in range(0, count - batch_size + 1, batch_size):
        rows = starts[i:i + batch_size, None] + window
        yield ids[rows], ids[rows + 1]


def sequential_batches(ids: torch.Tensor, batch_size: int, num_steps: int, generator: torch.Generator):
    """batch_size parallel streams read in order: row b of a batch continues row b of the one before."""
    offset = int(torch.randint(num_steps, (1,), generator=generator))
    usable = (len(ids) - offset - 1) // batch_size * batch_size
    xs = ids[offset:offset + usable].view(batch_size, -1)
    ys = ids[offset + 1:offset + 1 + usable].view(batch_size, -1)
    for t in range(0, xs.shape[1] - num_steps + 1, num_steps):
        yield xs[:, t:t + num_steps], ys[:, t:t + num_steps]


SAMPLERS = {"random": random_batches, "sequential": sequential_batches}


def num_batches(ids_len: int, batch_size: int, num_steps: int) -> int:
    """How many batches either sampler yields in an epoch at most (for the progress bar)."""
    return max(0, (ids_len - num_steps - 1) // (batch_size * num_steps))


def rare_to_unk(ids: torch.Tensor, unk_dropout: float, unk_id: int, generator: torch.Generator) -> torch.Tensor:
    """Replace each character by <unk> with probability a / (a + its count): rare ones often, common ones seldom.

    Held-out text keeps meeting characters never seen in training; this teaches the model how often
    (word dropout, as in Kiperwasser & Goldberg 2016, at the character level).
    """
    if not unk_dropout:
        return ids
    counts = torch.bincount(ids).float()
    chance = unk_dropout / (unk_dropout + counts[ids])
    return ids.masked_fill(torch.rand(len(ids), generator=generator) < chance, unk_id)
