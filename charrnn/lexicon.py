"""A language's words as a count model: which character follows which inside the words people write, from a
word-frequency list (wordfreq's), so a model knows words that its training text never showed it.

The list is read as text made of words drawn by their frequency: after a character p, the next one continues a
word in which p stood, or p ended its word and the next begins another one:

    P(c | p) = (pairs(p, c) + ends(p) * first(c)) / (follows(p) + ends(p))

with pairs(p, c) the frequency of words in which c follows p, ends(p) that of words ending in p, follows(p) that of
p followed by anything, and first(c) the share of words beginning with c. After a character that no word holds
(a line break, a space, punctuation, <unk>) the row is first(.) alone. A character model mixes these rows in
beside its bigram (CharRNN.lexicon_weight): its table over the model's vocabulary, and for a character outside
that vocabulary, its own probability of it (outside_probs), so that the lexicon's every character counts.
"""
import json
from collections import defaultdict
from functools import cached_property
from importlib.metadata import version

import numpy as np
import safetensors.numpy
import torch

from .counts import read_arrays

LEXICON_NAME = "lexicon.safetensors"
WORDLIST = "large"


class Lexicon:
    def __init__(self, chars: list[str], first: np.ndarray, ends: np.ndarray, follows: np.ndarray,
                 first_total: float, pairs: np.ndarray, pair_weights: np.ndarray, source: str = ""):
        self.chars, self.first, self.ends, self.follows = chars, first, ends, follows
        self.first_total, self.pairs, self.pair_weights, self.source = first_total, pairs, pair_weights, source
        self.prepared = None  # (vocab, what rows over it share): see over

    @classmethod
    def of_words(cls, frequencies, chars=None, source: str = "") -> "Lexicon":
        """From (word, frequency) pairs, keeping the characters of chars (the totals count every character), or
        every character of the words."""
        frequencies = [(w, f) for w, f in frequencies if w and f > 0]
        keep = sorted(set(chars) if chars is not None else {c for w, _ in frequencies for c in w})
        index = {c: i for i, c in enumerate(keep)}
        first, ends, follows = (np.zeros(len(keep)) for _ in range(3))
        pairs, first_total = defaultdict(float), 0.0
        for word, f in frequencies:
            first_total += f
            if (i := index.get(word[0])) is not None:
                first[i] += f
            if (i := index.get(word[-1])) is not None:
                ends[i] += f
            for a, b in zip(word, word[1:]):
                if (i := index.get(a)) is not None:
                    follows[i] += f
                    if (j := index.get(b)) is not None:
                        pairs[i, j] += f
        if not first_total:
            raise ValueError("a lexicon needs at least one word with a positive frequency")
        ids = np.array(sorted(pairs), np.int32).reshape(-1, 2)
        weights = np.array([pairs[i, j] for i, j in ids.tolist()], np.float64)
        return cls(keep, first, ends, follows, first_total, ids, weights, source)

    @classmethod
    def of_language(cls, language: str, chars=None) -> "Lexicon":
        """wordfreq's list of the language (its code: zh, en, ...), keeping the characters of chars, or all."""
        import wordfreq  # only training builds a lexicon; a saved one loads without it

        known = wordfreq.available_languages(WORDLIST)
        if language not in known:
            raise ValueError(f"no word list for language {language!r}; wordfreq has: {', '.join(sorted(known))}")
        source = f"wordfreq {version('wordfreq')} ({WORDLIST} list, {language})"
        return cls.of_words(wordfreq.get_frequency_dict(language, WORDLIST).items(), chars, source)

    def outside_probs(self, vocab, previous: list[str], chars: str) -> np.ndarray:
        """Its probability of each of chars, characters outside vocab, after each of the characters previous; 0
        for a character no word holds. Together they are the <unk> column of its rows."""
        index, keys, n = self.index, self.pair_keys, len(self.chars)
        out = np.zeros(len(chars))
        for k, (i, c) in enumerate(zip(map(index.get, previous), chars)):
            if (j := index.get(c)) is None:
                continue
            first = self.first[j] / self.first_total
            if i is None or not self.occurrences[i]:
                out[k] = first
                continue
            at = np.searchsorted(keys, i * n + j)
            pair = self.pair_weights[at] if at < len(keys) and keys[at] == i * n + j else 0.0
            out[k] = (self.ends[i] * first + pair) / self.occurrences[i]
        return out

    def rows(self, vocab, previous: list[str | None]) -> torch.Tensor:
        """P(next id | previous character) [len(previous), V] over a model's vocabulary (None: a character not
        known, so first(.)); the <unk> column holds the mass of every character outside the vocabulary."""
        first, columns, starts = self.over(vocab)
        distinct = list(dict.fromkeys(previous))
        rows = np.tile(first, (len(distinct), 1))
        held = [(r, i) for r, i in enumerate(map(self.index.get, distinct))  # characters that a word holds
                if i is not None and self.occurrences[i]]
        if held:
            r, i = map(np.array, zip(*held))
            rows[r] *= (self.ends[i] / self.occurrences[i])[:, None]
            rows[r, vocab.unk_id] += self.follows[i] / self.occurrences[i]  # continuations, all on <unk>...
            for row, i in held:  # ... then moved to their own columns: only this character's pairs are read
                span = slice(starts[i], starts[i + 1])
                inside = columns[span] != vocab.unk_id
                shares = self.pair_weights[span][inside] / self.occurrences[i]
                np.add.at(rows[row], columns[span][inside], shares)
                rows[row, vocab.unk_id] -= shares.sum()
        position = {p: r for r, p in enumerate(distinct)}
        return torch.from_numpy(rows[[position[p] for p in previous]].clip(0, None)).float()

    def over(self, vocab) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What its rows over vocab share, worked out once per vocabulary: first(.) over vocab (the <unk> column
        holding words that begin outside it), each pair's column in vocab, and where each character's pairs start
        (pairs are sorted by their first character)."""
        if self.prepared is None or self.prepared[0] is not vocab:
            ids = np.array([vocab.stoi.get(c, vocab.unk_id) for c in self.chars], np.int64)
            first = np.zeros(len(vocab))
            np.add.at(first, ids, self.first / self.first_total)
            first[vocab.unk_id] += 1 - first.sum()
            starts = np.searchsorted(self.pairs[:, 0], np.arange(len(self.chars) + 1))
            self.prepared = vocab, first, ids[self.pairs[:, 1]], starts
        return self.prepared[1:]

    def table(self, vocab) -> torch.Tensor:
        """P(next id | previous id) [V, V]: the rows of the vocabulary's characters, <unk>'s first(.)."""
        return self.rows(vocab, [None, *vocab.chars])

    @cached_property
    def index(self) -> dict[str, int]:
        """Each kept character's position in chars."""
        return {c: i for i, c in enumerate(self.chars)}

    @cached_property
    def occurrences(self) -> np.ndarray:
        """How often each kept character stands in a word: followed by another, or ending it (the rows'
        denominator)."""
        return self.ends + self.follows

    @cached_property
    def pair_keys(self) -> np.ndarray:
        """Each pair as one number, in the pairs' (sorted) order, for searchsorted."""
        return self.pairs[:, 0].astype(np.int64) * len(self.chars) + self.pairs[:, 1]

    def save(self, path) -> None:
        tensors = {"first": self.first, "ends": self.ends, "follows": self.follows, "pairs": self.pairs,
                   "pair_weights": self.pair_weights, "first_total": np.array([self.first_total])}
        metadata = {"chars": json.dumps(self.chars, ensure_ascii=False), "source": self.source}
        safetensors.numpy.save_file(tensors, str(path), metadata)

    @classmethod
    def load(cls, path) -> "Lexicon":
        """A saved lexicon, read through safetensors (no pickle); ValueError if the file is not one."""
        try:
            meta, t = read_arrays(path, ("first", "ends", "follows", "pairs", "pair_weights", "first_total"))
            lexicon = cls(json.loads(meta["chars"]), t["first"], t["ends"], t["follows"], t["first_total"].item(),
                          t["pairs"], t["pair_weights"], meta.get("source", ""))
            if not lexicon.fits():
                raise ValueError("its arrays do not fit its characters")
        except Exception as e:  # a damaged or foreign file: safetensors, json, KeyError and the checks all end here
            raise ValueError(f"{path} is not a charrnn lexicon: {e}") from None
        return lexicon

    def fits(self) -> bool:
        """Whether the arrays fit the characters, the pairs in range and sorted as of_words makes them
        (outside_probs searches them)."""
        n, pairs = len(self.chars), self.pairs
        return (all(a.shape == (n,) for a in (self.first, self.ends, self.follows))
                and pairs.shape == (len(self.pair_weights), 2) and (not pairs.size or 0 <= pairs.min() <= pairs.max() < n)
                and bool(np.all(np.diff(self.pair_keys) > 0)))
