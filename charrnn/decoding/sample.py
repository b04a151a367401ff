"""The one sampler, for every model and row: the distribution a model decodes from (its smoothing prior taken back
out), each row's temperature, top-k and top-p, and the draw, by inverse CDF from the row's own stream of uniform
numbers, so that a seeded row draws the same alone or batched."""
import torch

from ..form import Options

UNIFORMS_PER_DRAW = 256


class Uniforms:
    """One sequence's own stream of uniform numbers: the same seed, the same draws, whatever the batch."""

    def __init__(self, seed: int | None):
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self.buffer, self.used = [], 0

    def next(self) -> float:
        if self.used == len(self.buffer):
            self.buffer = torch.rand(UNIFORMS_PER_DRAW, generator=self.generator, dtype=torch.float64).tolist()
            self.used = 0
        self.used += 1
        return self.buffer[self.used - 1]


def without_prior(ops, probs, prior, unk: int):
    """What decoding draws from: the smoothing prior a model was trained towards taken back out of its distribution
    probs [B, V] (None: none), clipped at 0, <unk> never: samples are not sprinkled with frequent characters."""
    weights = probs - prior if prior is not None else ops.copy(probs)
    weights[:, unk] = 0
    return ops.xp.clip(weights, 0, None, out=weights)


class Sampler:
    """The one sampler, for every model and row: each row's decoding weights tempered by its temperature, filtered
    by its top-k and top-p, and one id drawn with the row's own uniform number (the likeliest at temperature 0).
    What the rows' options ask is worked out once, when the rows change."""

    def __init__(self, ops, options: list[Options], array):
        """array: plain values as an array of ops' kind on the model's device."""
        self.ops = ops
        self.greedy = [option.temperature == 0 for option in options]
        exponents = [1 / option.temperature if option.temperature not in (0, 1) else 1.0 for option in options]
        self.tempered = any(e != 1 for e in exponents)
        self.exponent = exponents[0] if len(set(exponents)) == 1 else array([[e] for e in exponents])
        self.filters = {}  # (top_k, top_p) -> the rows that use it
        for row, option in enumerate(options):
            if option.top_k or option.top_p:
                self.filters.setdefault((option.top_k, option.top_p), []).append(row)

    def shaped(self, weights):
        """The weights each row draws from: tempered and filtered as its options say (a new array where changed)."""
        if self.tempered:
            weights = temper(self.ops, weights, self.exponent)
        if self.filters:
            weights = self.ops.copy(weights)
            for (top_k, top_p), rows in self.filters.items():
                weights[rows] = self.ops.top_filter(weights[rows], top_k, top_p)
        return weights

    def draw(self, weights, uniforms: list[float]) -> list[int]:
        """One id a row from shaped weights, by inverse CDF with the row's uniform number."""
        return self.ops.sample(weights, uniforms, self.greedy)


def temper(ops, weights, exponent):
    """weights ** exponent (1 / temperature), each row over its largest first (a low T would round all to 0)."""
    xp = ops.xp
    weights = weights / xp.clip(xp.amax(weights, axis=1, keepdims=True), 1e-30, None)
    xp.pow(weights, exponent, out=weights)
    return weights


def obey(weights, allowed: list[int] | None, banned: list[int]) -> bool:
    """Zero weights [V] outside the allowed ids (None: all) and at the banned ones; whether any weight is left."""
    if allowed is not None:
        kept = weights[allowed]
        weights[:] = 0
        weights[allowed] = kept
    if banned:
        weights[banned] = 0
    return float((weights[allowed] if allowed is not None else weights).sum()) > 0


def lift(weights, shares: dict[int, float]) -> None:
    """Raise the weights [V] of some ids, where they are lower, to the share of the row given (a keyword's first
    character to its least chance here); the other ids keep their proportions."""
    total = float(weights.sum())
    for i, share in shares.items():
        others = total - float(weights[i])
        wanted = share * others / (1 - share) if share < 1 else others + 1
        if float(weights[i]) < wanted:
            weights[i] = wanted
            total = others + wanted
