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

from .errors import BadValue, EmptyText
from .vocab import normalize

OOV_PENALTY = math.log(10000)
ALTERNATIVES = 5
CHUNK = 256  # characters per forward pass: bounded memory for any length


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
    check(text, context)
    model.eval()
    vocab = model.vocab
    text = normalize(text, vocab.newlines)  # what the model reads: its own line breaks
    context = normalize(context, vocab.newlines) or line_start(vocab)
    lead = vocab.encode(context)
    state = state_after(model, lead[:-1])
    targets = torch.tensor(vocab.encode(text), device=model.device)
    inputs = torch.cat([torch.tensor(lead[-1:], device=model.device), targets[:-1]])
    previous = context[-1] + text[:-1]  # the character before each, which the count models read even as <unk>
    outside = (targets == vocab.unk_id).nonzero()[:, 0].tolist()
    gain = np.zeros(len(targets))
    if outside and model.count_share:
        gain[outside] = model.outside_gain([previous[k] for k in outside], [text[k] for k in outside])
    judge = Judge(len(targets), len(vocab), vocab.unk_id, details, gain)
    after_outside = inputs == vocab.unk_id
    for start in range(0, len(targets), CHUNK):
        ids = inputs[None, start:start + CHUNK]
        here = model.count_share and bool(after_outside[start:start + CHUNK].any())
        rows = model.count_rows(previous[start:start + CHUNK])[None] if here else None
        log_probs, state = model.log_probs(ids, state, rows)
        judge(log_probs[0], targets[start:start + CHUNK], start)
    return judge.score(text, vocab.itos)


def line_start(vocab) -> str:
    """What the first character of a text scored without context follows."""
    return "\n" if "\n" in vocab else " "


def count_probs(counts, vocab, text: str) -> np.ndarray:
    """Each character's fair probability under a count model alone (a Bigram or a Lexicon), text read as score
    reads it without context: the same positions as score(...).probs, and as there, a character outside the
    vocabulary has the count model's own probability of it."""
    text = normalize(text, vocab.newlines)
    previous = line_start(vocab) + text[:-1]
    targets, previous_ids = torch.tensor(vocab.encode(text)), torch.tensor(vocab.encode(previous))
    probs = counts.table(vocab)[previous_ids, targets].double().numpy()
    after_outside = (previous_ids == vocab.unk_id).nonzero()[:, 0].numpy()
    rows = counts.rows(vocab, [previous[k] for k in after_outside])
    probs[after_outside] = rows[torch.arange(len(rows)), targets[after_outside]].double().numpy()
    outside = (targets == vocab.unk_id).nonzero()[:, 0].tolist()
    probs[outside] = counts.outside_probs(vocab, [previous[k] for k in outside], [text[k] for k in outside])
    return probs


def check(text, context) -> None:
    if not isinstance(text, str):
        raise BadValue("text", text, "text")
    if not text:
        raise EmptyText("text", text)
    if not isinstance(context, str):
        raise BadValue("context", context, "text")


class Judge:
    """Scores targets a chunk at a time by the fair rule: the total negative log-likelihood and, with details, each
    one's probability, rank and alternatives, in arrays allocated once (long-lived pieces between the chunks' big
    temporaries would fragment the heap)."""

    def __init__(self, n: int, vocab_size: int, unk: int, details: bool, gain: np.ndarray | None = None):
        self.unk, self.nll, self.top_k = unk, 0.0, min(ALTERNATIVES, vocab_size - 2)
        self.gain = gain  # what the count models add to each target outside the vocabulary (CharRNN.outside_gain)
        self.out = None
        if details:
            self.out = (np.empty(n, np.float32), np.empty(n, np.int32), np.empty((n, self.top_k), np.int32),
                        np.empty((n, self.top_k), np.float32))

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, start: int) -> None:
        """logits (or log-probabilities) [T, V] for the targets y [T] at positions start.."""
        log_probs = logits.float().log_softmax(-1)
        chosen = log_probs.gather(1, y[:, None])[:, 0] - (y == self.unk) * OOV_PENALTY
        if self.gain is not None and self.gain[start:start + len(y)].any():
            gain = torch.from_numpy(self.gain[start:start + len(y)]).to(chosen.device)
            with_gain = (chosen.double().exp() + gain).clamp_min(1e-300)  # rounding must not make it negative
            chosen = torch.where(gain != 0, with_gain.log().float(), chosen)
        self.nll -= chosen.double().sum().item()
        if self.out is None:
            return
        log_probs[:, self.unk] = -math.inf  # <unk> is no character to expect
        ranks = (log_probs > chosen[:, None]).sum(1) + 1
        log_probs.scatter_(1, y[:, None], -math.inf)
        top, top_ids = log_probs.topk(self.top_k, 1)
        for into, part in zip(self.out, (chosen.exp(), ranks, top_ids, top.exp())):
            into[start:start + len(y)] = part.cpu().numpy()

    def score(self, text: str, itos: list[str]) -> Score:
        return Score(text, self.nll, itos, *(self.out or ()))


def fair_perplexity(model, text: str) -> float:
    return score(model, text, details=False).perplexity
