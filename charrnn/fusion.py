"""A next-line model fused with a character model. The encoder-decoder's distribution of each next character is mixed
with two more over the same vocabulary:
  - the character model primed with the line answered and a line break, as if that line were the lyric so far
    (shallow fusion, Gulcehre et al. 2015): what it knows of the language, which a few thousand line pairs cannot
    teach an encoder-decoder;
  - a cache over that line and what is written after it (Grave et al. 2017, "Improving Neural Language Models with a
    Continuous Cache"): every position read is a key, the character model's state there, and its value is the
    character that followed it; the current state is the query, and softmax(sharpness * key . query) weighs the
    values. It has no trained weights, so it cannot memorise the training pairs, and it looks somewhere: lyrics
    repeat words from one line to the next.
The shares and the sharpness are chosen on held-out pairs (training/next_line.py) and saved in the next-line model's
config.json; the character model is saved whole in its folder's subfolder language_model/."""
import math
from typing import NamedTuple

import torch

from .evaluate import OOV_PENALTY
from .model import CharRNN

LANGUAGE_MODEL = "language_model"


class Shares(NamedTuple):
    """Each part's share of every probability: the encoder-decoder has what the other two leave."""
    language_model: float
    cache: float

    @property
    def decoder(self) -> float:
        return max(0.0, 1 - self.language_model - self.cache)  # not -1e-17 where the two fill it


class Fusion:
    """The character model a next-line model is fused with, each part's share, and the cache's sharpness."""

    def __init__(self, language_model: CharRNN, shares: Shares, sharpness: float):
        self.language_model, self.shares, self.sharpness = language_model.eval(), shares, sharpness

    def read(self, line: str) -> "Primed":
        return Primed(self.language_model, line, self.sharpness)

    def mixed(self, decoder_probs: torch.Tensor, primed: "Primed") -> tuple[torch.Tensor, torch.Tensor]:
        """The fused distribution of the next character [V], from the encoder-decoder's decoder_probs [V] and the
        primed character model; and the cache's weights over the positions read before the last."""
        probs, weights = primed.next()
        shares = self.shares
        return (shares.decoder * decoder_probs + shares.language_model * probs
                + shares.cache * primed.cache(weights)), weights

    def prior(self, decoder_prior: torch.Tensor) -> torch.Tensor:
        """The label-smoothing mass the fused distribution holds (decoder_prior: the encoder-decoder's), which
        decoding takes back out, as each part's own decoding does."""
        return self.shares.decoder * decoder_prior + self.shares.language_model * self.language_model.smoothing_mass


class Primed:
    """The character model reading a line between line breaks (as it read lines in training), then the characters
    after it one at a time: its probabilities of the next character and the cache over every position read. Key j is
    the state before the line's character j, so its value is that character: the cache's weights on the line's keys
    are weights on its characters."""

    def __init__(self, model: CharRNN, line: str, sharpness: float):
        self.model, self.sharpness = model, sharpness
        text = "\n" + line + "\n"
        features, self.state = model.features(self.ids(text)[None])
        self.keys, self.values, self.last = features[0], list(text[1:]), text[-1]
        self.value_ids = self.ids(self.values)  # grown as it reads: a step's cache needs them all

    def ids(self, chars) -> torch.Tensor:
        vocab = self.model.vocab
        return torch.tensor([vocab.stoi.get(c, vocab.unk_id) for c in chars], device=self.model.device)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The character model's probabilities of the next character [V], its count models mixed in, and the
        cache's weights over the positions read before the last (whose next character is known)."""
        model, query = self.model, self.keys[-1]
        rows = model.count_rows([self.last]) if model.count_share else None  # they read the character itself
        probs = model.with_counts(model.head(query)[None], self.ids(self.last), rows)[0].exp()
        return probs, (self.sharpness * (self.keys[:-1] @ query)).softmax(-1)

    def cache(self, weights: torch.Tensor) -> torch.Tensor:
        """The cache's probabilities [V]: each position's weight on the character that followed it (<unk> for one
        outside the vocabulary, which decoding never draws)."""
        return weights.new_zeros(len(self.model.vocab)).index_add_(0, self.value_ids, weights)

    def outside_gain(self, weights: torch.Tensor, char: str) -> float:
        """What the cache adds to the fair probability of char outside the vocabulary: its own weight on that
        character, where its <unk> column gives a 10,000th of its weight on every such character."""
        own = weights.new_tensor([value == char for value in self.values])
        outside = weights.new_tensor([value not in self.model.vocab for value in self.values])
        return float(weights @ (own - outside * math.exp(-OOV_PENALTY)))

    def read(self, char: str) -> None:
        features, self.state = self.model.features(self.ids(char)[None], self.state)
        self.keys = torch.cat([self.keys, features[0]])
        self.values.append(char)
        self.value_ids = torch.cat([self.value_ids, self.ids(char)])
        self.last = char
