"""Scoring text: how likely a model finds each character of it given the characters before.

Fair: a character outside the vocabulary costs -log P(<unk>) + log(10000), so a model cannot buy a lower
perplexity with a smaller vocabulary. The first character is scored given the context, or, without one,
given the start of a line (where generation starts too). The held-out perplexity of training, the CLI
and the page all come from `score`.
"""
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from .vocab import normalize

OOV_PENALTY = math.log(10000)
ALTERNATIVES = 5
CHUNK = 512  # characters per forward pass: bounded memory for any length


class CharScore(NamedTuple):
    """One scored character: its probability, its rank among the model's choices (1 = the first), and the
    five likeliest other characters with their probabilities."""
    char: str
    prob: float
    rank: int
    alternatives: tuple[tuple[str, float], ...]


class CharScores(Sequence):
    """The per-character details of a Score, made on access from compact arrays (100,000 characters: 5 MB)."""

    def __init__(self, score: "Score"):
        self.score = score

    def __len__(self) -> int:
        return self.score.count

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        s, itos = self.score, self.score.itos
        alternatives = tuple((itos[i], float(p)) for i, p in zip(s.alt_ids[k].tolist(), s.alt_probs[k].tolist()))
        return CharScore(s.text[k], float(s.probs[k]), int(s.ranks[k]), alternatives)


class Score:
    """A text scored by a model: total negative log-likelihood (nats), characters scored, fair perplexity,
    and with details, each character's probability, rank and alternatives."""

    def __init__(self, text: str, nll: float, itos: list[str], probs=None, ranks=None, alt_ids=None, alt_probs=None):
        self.text, self.nll, self.count, self.itos = text, nll, len(text), itos
        self.probs, self.ranks, self.alt_ids, self.alt_probs = probs, ranks, alt_ids, alt_probs

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.count)

    @property
    def chars(self) -> CharScores:
        if self.probs is None:
            raise ValueError("scored without details: call score(..., details=True)")
        return CharScores(self)

    def surprise(self) -> np.ndarray:
        """Bits of surprise per character: -log2 of its probability."""
        return -np.log2(np.maximum(self.probs, 1e-300))

    def line_column(self, k: int) -> tuple[int, int]:
        """Where position k is: its line and column, both counted from 1."""
        return self.text.count("\n", 0, k) + 1, k - self.text.rfind("\n", 0, k)

    def most_surprising(self, n: int = 10) -> list[int]:
        """The positions of the n least expected characters, most surprising first."""
        return np.argsort(self.probs, kind="stable")[:n].tolist()


def state_after(model, ids: list[int]):
    """The state after ids, read CHUNK characters at a time."""
    state = None
    for start in range(0, len(ids), CHUNK):
        _, state = model(torch.tensor([ids[start:start + CHUNK]], device=model.device), state)
    return state


@torch.inference_mode()
def score(model, text: str, context: str = "", details: bool = True) -> Score:
    """Score text given context (which primes the state and is not scored)."""
    if not isinstance(text, str) or not text:
        raise ValueError("nothing to score: the text is empty")
    if not isinstance(context, str):
        raise ValueError(f"context must be text, got {context!r}")
    model.eval()
    vocab, unk = model.vocab, model.vocab.unk_id
    text = normalize(text, vocab.newlines)  # what the model reads: its own line breaks
    lead = vocab.encode(context or ("\n" if "\n" in vocab else " "))
    state = state_after(model, lead[:-1])
    targets = torch.tensor(vocab.encode(text), device=model.device)
    inputs = torch.cat([torch.tensor(lead[-1:], device=model.device), targets[:-1]])
    n, top_k = len(targets), min(ALTERNATIVES, len(vocab) - 2)
    nll, out = 0.0, None
    if details:  # filled chunk by chunk: long-lived pieces between the chunks' big temporaries fragment the heap
        out = np.empty(n, np.float32), np.empty(n, np.int32), np.empty((n, top_k), np.int32), np.empty((n, top_k), np.float32)
    for start in range(0, n, CHUNK):
        logits, state = model(inputs[None, start:start + CHUNK], state)
        log_probs = logits[0].float().log_softmax(-1)
        y = targets[start:start + CHUNK]
        chosen = log_probs.gather(1, y[:, None])[:, 0] - (y == unk) * OOV_PENALTY
        nll -= chosen.double().sum().item()
        if details:
            log_probs[:, unk] = -math.inf  # <unk> is no character to expect
            ranks = (log_probs > chosen[:, None]).sum(1) + 1
            log_probs.scatter_(1, y[:, None], -math.inf)
            top, top_ids = log_probs.topk(top_k, 1)
            for into, part in zip(out, (chosen.exp(), ranks, top_ids, top.exp())):
                into[start:start + CHUNK] = part.cpu().numpy()
    return Score(text, nll, vocab.itos, *(out or ()))


def fair_perplexity(model, text: str) -> float:
    return score(model, text, details=False).perplexity
