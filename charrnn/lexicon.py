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
from importlib.metadata import version

import numpy as np
import safetensors.numpy
import torch

LEXICON_NAME = "lexicon.safetensors"
WORDLIST = "large"


class Lexicon:
    def __init__(self, chars: list[str], first: np.ndarray, ends: np.ndarray, follows: np.ndarray,
                 first_total: float, pairs: np.ndarray, pair_weights: np.ndarray, source: str = ""):
        self.chars, self.first, self.ends, self.follows = chars, first, ends, follows
        self.first_total, self.pairs, self.pair_weights, self.source = first_total, pairs, pair_weights, source

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

    def outside_probs(self, vocab, previous: list[int], chars: str) -> np.ndarray:
        """Its probability of each of chars, characters outside vocab, after each of the ids previous (the row of
        <unk> is first(.)); 0 for a character no word holds. Together they are the <unk> column of table."""
        index = {c: i for i, c in enumerate(self.chars)}
        n, rows = len(self.chars), [index.get(vocab.itos[p]) if p != vocab.unk_id else None for p in previous]
        keys = self.pairs[:, 0].astype(np.int64) * n + self.pairs[:, 1]  # sorted: of_words sorts the pairs
        out = np.zeros(len(chars))
        for k, (i, c) in enumerate(zip(rows, chars)):
            if (j := index.get(c)) is None:
                continue
            first = self.first[j] / self.first_total
            if i is None or not self.ends[i] + self.follows[i]:
                out[k] = first
                continue
            at = np.searchsorted(keys, i * n + j)
            pair = self.pair_weights[at] if at < len(keys) and keys[at] == i * n + j else 0.0
            out[k] = (pair + self.ends[i] * first) / (self.ends[i] + self.follows[i])
        return out

    def table(self, vocab) -> torch.Tensor:
        """P(next id | previous id) [V, V] over a model's vocabulary; the <unk> column holds the mass of every
        character outside it."""
        ids = np.array([vocab.stoi.get(c, vocab.unk_id) for c in self.chars], np.int64)
        first = np.zeros(len(vocab))
        np.add.at(first, ids, self.first / self.first_total)
        first[vocab.unk_id] += 1 - first.sum()  # words beginning with a character outside the vocabulary
        rows = np.tile(first, (len(vocab), 1))
        known = (ids != vocab.unk_id) & (self.ends + self.follows > 0)
        denominator = self.ends + self.follows
        rows[ids[known]] *= (self.ends[known] / denominator[known])[:, None]
        rows[ids[known], vocab.unk_id] += self.follows[known] / denominator[known]  # continuations, all on <unk>...
        p, c = ids[self.pairs[:, 0]], ids[self.pairs[:, 1]]
        inside = (p != vocab.unk_id) & (c != vocab.unk_id) & known[self.pairs[:, 0]]
        shares = self.pair_weights[inside] / denominator[self.pairs[inside, 0]]
        np.add.at(rows, (p[inside], c[inside]), shares)  # ... then moved to their own columns
        np.add.at(rows, (p[inside], vocab.unk_id), -shares)
        return torch.from_numpy(rows.clip(0, None)).float()

    def save(self, path) -> None:
        tensors = {"first": self.first, "ends": self.ends, "follows": self.follows, "pairs": self.pairs,
                   "pair_weights": self.pair_weights, "first_total": np.array([self.first_total])}
        metadata = {"chars": json.dumps(self.chars, ensure_ascii=False), "source": self.source}
        safetensors.numpy.save_file(tensors, str(path), metadata)

    @classmethod
    def load(cls, path) -> "Lexicon":
        """A saved lexicon, read through safetensors (no pickle); ValueError if the file is not one."""
        try:
            with safetensors.safe_open(str(path), "np") as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in ("first", "ends", "follows", "pairs", "pair_weights", "first_total")}
            chars = json.loads(meta["chars"])
            n = len(chars)
            if not all(t[k].shape == (n,) for k in ("first", "ends", "follows")) or t["first_total"].shape != (1,) \
                    or t["pairs"].shape != (len(t["pair_weights"]), 2) or (t["pairs"].size and not 0 <= t["pairs"].min() <= t["pairs"].max() < n):
                raise ValueError("its arrays do not fit its characters")
        except Exception as e:  # a damaged or foreign file: safetensors, json, KeyError and the checks all end here
            raise ValueError(f"{path} is not a charrnn lexicon: {e}") from None
        return cls(chars, t["first"], t["ends"], t["follows"], float(t["first_total"][0]), t["pairs"],
                   t["pair_weights"], meta.get("source", ""))
