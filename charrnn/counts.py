"""The bigram baseline: pairs of characters counted on a model's training text, shipped beside its weights.

P(c | p) = w * count(p, c) / count(p) + (1 - w) * P(c), the unigram P(c) with one <unk> slot for every character
never counted (its Witten-Bell share: kinds / (total + kinds)). After a character that was never followed by
anything, P(c | p) is the unigram alone, so every row sums to one. Scored by the same fair rule as the models:
a character outside the counted ones costs -log P(<unk>) + log(10000). The weight w is chosen on held-out
text, which makes the baseline optimistic and hard to beat.

A character model mixes its network with this count model (CharRNN's count_weight): `table` is the bigram seen
through the model's vocabulary, so that the mixture is a distribution over the same ids.
"""
import json
import math
from collections import Counter

import numpy as np
import safetensors.numpy
import torch

from .errors import BadValue, EmptyText
from .evaluate import OOV_PENALTY, Score
from .vocab import normalize

BIGRAM_NAME = "bigram.safetensors"
WEIGHTS = [k / 20 for k in range(1, 20)]
UNCOUNTED = ""  # no character: p_unigram of it is the <unk> slot, every never-counted character's together


def read_arrays(path, names) -> tuple[dict, dict]:
    """The metadata and the named arrays of a safetensors file (a count model's)."""
    with safetensors.safe_open(str(path), "np") as f:
        return f.metadata() or {}, {k: f.get_tensor(k) for k in names}


class Bigram:
    def __init__(self, unigram: Counter, pairs: Counter, weight: float = 0.5, newlines: str = "keep"):
        self.unigram, self.pairs, self.weight, self.newlines = unigram, pairs, weight, newlines
        self.total, self.kinds = sum(unigram.values()), len(unigram)
        self.follows = Counter()
        for (p, _), n in pairs.items():
            self.follows[p] += n

    @classmethod
    def count(cls, text: str, newlines: str = "keep") -> "Bigram":
        text = normalize(text, newlines)
        return cls(Counter(text), Counter(zip(text, text[1:])), newlines=newlines)

    def p_unigram(self, c: str) -> float:
        return (self.unigram[c] if c in self.unigram else self.kinds) / (self.total + self.kinds)

    def p(self, c: str, prev: str, weight: float | None = None) -> float:
        """P(c | prev); for a character never counted, the probability of the <unk> slot."""
        w = self.weight if weight is None else weight
        if not self.follows[prev]:
            return self.p_unigram(c)
        return w * self.pairs[prev, c] / self.follows[prev] + (1 - w) * self.p_unigram(c)

    def fair_p(self, c: str, prev: str, weight: float | None = None) -> float:
        """P(c | prev) by the fair rule: a character never counted shares its <unk> slot with 10,000 others."""
        return self.p(c, prev, weight) * (1.0 if c in self.unigram else math.exp(-OOV_PENALTY))

    def events(self, text: str, context: str = "") -> list[tuple[str, str]]:
        """(previous, next) for each character of text; the first follows context's end, else a line's start."""
        text, context = normalize(text, self.newlines), normalize(context, self.newlines)
        lead = context[-1:] or ("\n" if self.newlines == "keep" else " ")
        return list(zip(lead + text, text))

    def nll(self, events: list[tuple[str, str]], weight: float | None = None) -> float:
        return sum(-math.log(self.fair_p(c, p, weight)) for p, c in events)

    def tune(self, held_out: str) -> "Bigram":
        """Choose the weight that scores held_out best (its first character is the context of the rest)."""
        events = self.events(held_out[1:], held_out[:1])
        self.weight = min(WEIGHTS, key=lambda w: self.nll(events, w))
        return self

    def score(self, text: str, context: str = "", weight: float | None = None) -> Score:
        """The fair perplexity of text given context, as CharRNN.score computes it (without per-character details);
        weight=0 scores the unigram."""
        if not isinstance(text, str):
            raise BadValue("text", text, "text")
        if not text:
            raise EmptyText("text", text)
        text = normalize(text, self.newlines)
        return Score(text, self.nll(self.events(text, context), weight), [])

    def outside_probs(self, vocab, previous: list[str], chars: str) -> np.ndarray:
        """Its fair probability of each of chars, characters outside vocab, after each of the characters previous:
        its own where it counted the character, else its <unk> slot's share. Together they are the <unk> column of
        its rows."""
        share = 1 / (1 + self.uncounted(vocab))
        return np.array([self.fair_p(c, p) * (1.0 if c in self.unigram else share) for p, c in zip(previous, chars)])

    def uncounted(self, vocab) -> int:
        """How many characters of vocab it never counted (a model fine-tuned on its text knows others too): they
        share its <unk> slot with the characters outside vocab, one part each."""
        return sum(c not in self.unigram for c in vocab.chars)

    def rows(self, vocab, previous: list[str | None]) -> torch.Tensor:
        """P(next id | previous character) [len(previous), V] over a model's vocabulary (None: a character not
        known, so the unigram, as after any character never followed); the <unk> column holds the mass of every
        character outside the vocabulary."""
        unigram = np.zeros(len(vocab))
        slot = self.p_unigram(UNCOUNTED) / (1 + self.uncounted(vocab))  # a never-counted character's part
        unigram[1:] = [self.p_unigram(c) if c in self.unigram else slot for c in vocab.itos[1:]]
        unigram[vocab.unk_id] = 1 - unigram.sum()
        rows = np.tile(unigram, (len(previous), 1))
        at = {}  # each previous character that was followed -> its rows
        for r, p in enumerate(previous):
            if p is not None and self.follows[p]:
                at.setdefault(p, []).append(r)
                rows[r] *= 1 - self.weight
                rows[r, vocab.unk_id] += self.weight  # the pairs' mass, all first put on <unk>...
        for (p, c), n in self.pairs.items():
            if p in at and c in vocab.stoi:  # ... then moved to their own columns
                share = self.weight * n / self.follows[p]
                rows[at[p], vocab.stoi[c]] += share
                rows[at[p], vocab.unk_id] -= share
        return torch.from_numpy(rows.clip(0, None)).float()

    def table(self, vocab) -> torch.Tensor:
        """P(next id | previous id) [V, V]: the rows of the vocabulary's characters, <unk>'s the unigram."""
        return self.rows(vocab, [None, *vocab.chars])

    def save(self, path) -> None:
        chars = sorted(self.unigram)
        index = {c: i for i, c in enumerate(chars)}
        pairs = sorted(self.pairs.items())
        tensors = {"unigram": np.array([self.unigram[c] for c in chars], np.int64),
                   "pairs": np.array([[index[p], index[c]] for (p, c), _ in pairs], np.int32).reshape(-1, 2),
                   "pair_counts": np.array([n for _, n in pairs], np.int64)}
        metadata = {"chars": json.dumps(chars, ensure_ascii=False), "weight": repr(self.weight),
                    "newlines": self.newlines}
        safetensors.numpy.save_file(tensors, str(path), metadata)

    @classmethod
    def load(cls, path) -> "Bigram":
        """A saved bigram, read through safetensors (no pickle); ValueError if the file is not one."""
        try:
            meta, tensors = read_arrays(path, ("unigram", "pairs", "pair_counts"))
            chars, weight = json.loads(meta["chars"]), float(meta["weight"])
        except Exception as e:  # a damaged or foreign file: safetensors, json and KeyError all end here
            raise ValueError(f"{path} is not a charrnn bigram: {e}") from None
        unigram = Counter(dict(zip(chars, tensors["unigram"].tolist())))
        pairs = Counter({(chars[p], chars[c]): n for (p, c), n in zip(tensors["pairs"].tolist(),
                                                                      tensors["pair_counts"].tolist())})
        return cls(unigram, pairs, weight, meta.get("newlines", "keep"))
