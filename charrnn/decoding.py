"""Decoding: prime the state with the prefix in one pass, then one cheap step per new character.

The step runs on the model's raw weights (a hand-written step is several times faster than calling
nn.LSTM once per character), with the embedding already multiplied into the first layer's input
weights. It is written once for numpy arrays (a single stream on a CPU) and torch tensors (batches,
GPUs): see backends.py.
"""
import math
from collections.abc import Iterator

import torch

from . import backends
from .cells import layer_weights

MAX_TOP_K = 1_000_000


def check_options(length: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a whole number >= 0, got {length!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and 0 <= temperature <= 100):
        raise ValueError(f"temperature must be a number from 0 (greedy) to 100, got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, int) and 0 < top_k <= MAX_TOP_K):
        raise ValueError(f"top_k must be a positive whole number or None, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def columns(x, n: int) -> list:
    """x [B, n * H] as n views [B, H]: torch's chunk and numpy's split, spelled once."""
    size = x.shape[1] // n
    return [x[:, j * size:(j + 1) * size] for j in range(n)]


class Stepper:
    """One recurrence step for a batch of sequences, and the choice of the next characters.

    It works on plain copies of the model's weights: numpy arrays for a single stream on a CPU, torch
    tensors otherwise (see backends.py). Nothing records gradients, so no grad-mode context is needed:
    gradio may resume a generator on another thread, where a `with torch.inference_mode()` would no
    longer hold.
    """

    @torch.no_grad()
    def __init__(self, model, temperature: float, top_k: int | None = None, top_p: float | None = None,
                 batch_size: int = 1):
        self.ops = backends.for_decoding(model.device, batch_size)
        self.cell, self.temperature, self.top_k, self.top_p = model.cell, temperature, top_k, top_p
        layers = [[w.detach() for w in layer] for layer in layer_weights(model.rnn)]
        if self.cell != "gru":  # b_hh only ever adds to b_ih outside the GRU's reset gate
            layers = [(w_ih, b_ih + b_hh, w_hh, None) for w_ih, b_ih, w_hh, b_hh in layers]
        inputs = torch.eye(len(model.vocab), device=model.device) if model.one_hot else model.embed.weight
        w_ih0, b_ih0 = layers[0][:2]
        self.input_table = self.array(torch.addmm(b_ih0, inputs, w_ih0.t()))  # [V, G*H]: row v is token v's input
        self.layers = [(self.array(w_ih.t()) if k else None, self.array(b_ih), self.array(w_hh.t()), self.array(b_hh))
                       for k, (w_ih, b_ih, w_hh, b_hh) in enumerate(layers)]
        # A model trained with label smoothing predicts (1 - e) p + e * prior: decoding takes e * prior back out.
        self.prior = self.array(model.prior * model.smoothing) if model.smoothing else None
        scale = 1.0 / temperature if temperature > 0 and self.prior is None else 1.0  # else applied to probs
        self.proj_w = self.array(model.proj.weight.detach().t()) if model.proj else None
        head_b = model.head.bias.detach() * scale
        head_b[model.vocab.unk_id] = -math.inf  # never emit <unk>
        self.head_w, self.head_b = self.array(model.head.weight.detach().t() * scale), self.array(head_b)

    def array(self, tensor: torch.Tensor | None):
        return None if tensor is None else self.ops.array(tensor)

    def split_state(self, state) -> list:
        """The state of nn.RNN/GRU/LSTM as a list of per-layer arrays."""
        if self.cell == "lstm":
            return [(self.array(h), self.array(c)) for h, c in zip(state[0], state[1])]
        return [self.array(h) for h in state]

    def scores(self, features):
        """Next-character scores [B, V]: probabilities (not normalised) when sampling, anything ordered when greedy."""
        logits = self.ops.affine(features, self.head_w, self.head_b)
        if self.prior is None:
            return logits if self.temperature == 0 else self.ops.softmax(logits)
        probs = self.ops.softmax(logits)
        probs -= self.prior
        if self.temperature == 0:
            return probs
        probs = probs.clip(0, None)
        if self.temperature == 1:
            return probs
        # Divide by the largest first: a low temperature would otherwise round every probability to 0.
        return (probs / self.ops.xp.amax(probs, axis=1, keepdims=True)) ** (1 / self.temperature)

    def step(self, ids, state: list):
        """Advance every sequence by the tokens ids [B]; update state in place; return the next scores."""
        affine, sigmoid, tanh = self.ops.affine, self.ops.sigmoid, self.ops.xp.tanh
        x = None
        for k, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.layers):
            gi = self.ops.rows(self.input_table, ids) if k == 0 else affine(x, w_ih, b_ih)
            if self.cell == "lstm":
                h, c = state[k]
                i, f, g, o = columns(affine(h, w_hh, gi), 4)
                c = sigmoid(f) * c + sigmoid(i) * tanh(g)
                x = sigmoid(o) * tanh(c)
                state[k] = (x, c)
            elif self.cell == "gru":
                h = state[k]
                (gi_r, gi_z, gi_n), (gh_r, gh_z, gh_n) = columns(gi, 3), columns(affine(h, w_hh, b_hh), 3)
                r, z = sigmoid(gi_r + gh_r), sigmoid(gi_z + gh_z)
                n = tanh(gi_n + r * gh_n)
                x = state[k] = n + z * (h - n)
            else:
                x = state[k] = tanh(affine(state[k], w_hh, gi))
        return self.scores(x if self.proj_w is None else x @ self.proj_w)

    def choose(self, scores, uniform):
        """The next id [B] of each sequence: the argmax when greedy, else drawn with one uniform number per row.

        Inverse-CDF sampling needs no more than that one number (multinomial and Gumbel noise draw V per row,
        several times slower on a CPU).
        """
        if self.temperature == 0:
            return self.ops.argmax(scores)
        ids = None
        if self.top_k or self.top_p:
            scores, ids = self.ops.topk(scores, min(self.top_k or scores.shape[1], scores.shape[1]))
            if self.top_p:
                probs = scores / scores.sum(1, keepdims=True)
                scores = scores * (probs.cumsum(1) - probs < self.top_p)  # the likeliest always stays
        cdf = scores.cumsum(1)
        choice = self.ops.inverse_cdf(cdf, uniform * cdf[:, -1:])
        return choice if ids is None else self.ops.gather(ids, choice[:, None])[:, 0]


@torch.no_grad()
def prime(model, stepper: Stepper, prefixes: list[str]):
    """Run the prefixes through the model, those of one length together: the state after each and the
    scores of its next character, in the order given."""
    start = "\n" if "\n" in model.vocab else " "  # an empty prefix starts where a line starts
    encoded = [model.vocab.encode(prefix or start) for prefix in prefixes]
    groups = {}
    for row, ids in enumerate(encoded):
        groups.setdefault(len(ids), []).append(row)
    tops, states = [], []
    for rows in groups.values():
        out, state = model.features(torch.tensor([encoded[row] for row in rows], device=model.device))
        tops.append(out[:, -1])
        states.append(state)
    order = torch.tensor([row for rows in groups.values() for row in rows], device=model.device).argsort()
    if model.cell == "lstm":
        state = tuple(torch.cat([s[i] for s in states], 1)[:, order] for i in range(2))
    else:
        state = torch.cat(states, 1)[:, order]
    return stepper.scores(stepper.array(torch.cat(tops)[order])), stepper.split_state(state)


def decode(model, prefixes: list[str], length: int, temperature: float = 1.0, top_k=None, top_p=None,
           seed: int | None = None) -> Iterator[list[int]]:
    """Yield, length times, the next id of every sequence (the ids of one column of the batch)."""
    check_options(length, temperature, top_k, top_p)
    if length == 0:
        return
    model.eval()
    generator = torch.Generator(model.device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    stepper = Stepper(model, temperature, top_k, top_p, batch_size=len(prefixes))
    uniforms = stepper.array(torch.rand(length, len(prefixes), 1, generator=generator, device=model.device))
    scores, state = prime(model, stepper, prefixes)
    for t in range(length):
        ids = stepper.choose(scores, uniforms[t])
        yield ids.tolist()
        if t + 1 < length:
            scores = stepper.step(ids, state)
