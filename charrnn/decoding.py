"""Decoding: prime the state with the prefix in one pass, then one cheap step per new character.

The step runs on the model's raw weights (a hand-written step is several times faster than calling
nn.LSTM once per character), with the embedding already multiplied into the first layer's input
weights, and the temperature folded into the output layer.
"""
import math
from collections.abc import Iterator

import torch

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


class Stepper:
    """One recurrence step for a batch of sequences, on detached copies of a model's weights.

    Nothing here records gradients, so the step needs no grad-mode context: gradio may resume the
    generator on another thread, where a `with torch.inference_mode()` would no longer hold.
    """

    @torch.no_grad()
    def __init__(self, model, temperature: float):
        self.cell, self.temperature = model.cell, temperature
        layers = [[w.detach() for w in layer] for layer in layer_weights(model.rnn)]
        self.layers = []
        for k, (w_ih, b_ih, w_hh, b_hh) in enumerate(layers):
            if self.cell != "gru":  # b_hh only ever adds to b_ih outside the GRU's reset gate
                b_ih, b_hh = b_ih + b_hh, None
            self.layers.append((w_ih.t() if k else None, b_ih, w_hh.t(), b_hh))
        w_ih0, b_ih0 = layers[0][0], self.layers[0][1]
        inputs = torch.eye(len(model.vocab), device=model.device) if model.one_hot else model.embed.weight
        self.input_table = torch.addmm(b_ih0, inputs, w_ih0.t())  # [V, G*H]: row v is token v's input term
        # A model trained with label smoothing predicts (1 - e) p + e * prior: decoding takes e * prior back out.
        self.prior = model.prior * model.smoothing if model.smoothing else None
        scale = 1.0 / temperature if temperature > 0 and self.prior is None else 1.0  # else applied to probs
        self.proj_w = model.proj.weight.detach().t() if model.proj else None
        self.head_w = model.head.weight.detach().t() * scale
        self.head_b = model.head.bias.detach() * scale
        self.head_b[model.vocab.unk_id] = -math.inf  # never emit <unk>

    def split_state(self, state) -> list:
        if self.cell == "lstm":
            return [(h, c) for h, c in zip(state[0], state[1])]
        return list(state)

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """Next-character scores [B, V]: probabilities (not normalised) when sampling, anything ordered when greedy."""
        logits = torch.addmm(self.head_b, features, self.head_w)
        if self.prior is None:
            return logits if self.temperature == 0 else logits.softmax(1)
        probs = logits.softmax(1).sub_(self.prior)
        if self.temperature == 0:
            return probs
        probs.clamp_(min=0)
        return probs if self.temperature == 1 else probs.pow_(1 / self.temperature)

    def step(self, ids: torch.Tensor, state: list) -> torch.Tensor:
        """Advance every sequence by the tokens ids [B]; update state in place; return the next scores."""
        x = None
        for k, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.layers):
            gi = torch.embedding(self.input_table, ids) if k == 0 else torch.addmm(b_ih, x, w_ih)
            if self.cell == "lstm":
                h, c = state[k]
                i, f, g, o = torch.addmm(gi, h, w_hh).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                x = torch.sigmoid(o) * torch.tanh(c)
                state[k] = (x, c)
            elif self.cell == "gru":
                h = state[k]
                gh = torch.addmm(b_hh, h, w_hh)
                r, z = torch.sigmoid(gi[:, : 2 * h.shape[1]] + gh[:, : 2 * h.shape[1]]).chunk(2, 1)
                n = torch.tanh(gi[:, 2 * h.shape[1]:] + r * gh[:, 2 * h.shape[1]:])
                x = state[k] = torch.lerp(n, h, z)
            else:
                x = state[k] = torch.addmm(gi, state[k], w_hh).tanh_()
        return self.scores(x if self.proj_w is None else torch.mm(x, self.proj_w))


def sample(scores: torch.Tensor, top_k, top_p, uniform: torch.Tensor) -> torch.Tensor:
    """Draw the next id for each row of scores [B, V] (unnormalised probabilities, see Stepper.scores).

    uniform [B, 1] holds one random number per row: inverse-CDF sampling needs no more (multinomial
    and Gumbel noise draw V random numbers per row and are several times slower on a CPU).
    """
    ids = None
    if top_k or top_p:
        scores, ids = scores.topk(min(top_k or scores.shape[1], scores.shape[1]), 1)
        if top_p:
            probs = scores / scores.sum(1, keepdim=True)
            scores = scores.masked_fill(probs.cumsum(1) - probs >= top_p, 0)  # the likeliest always stays
    cdf = scores.cumsum(1)
    # right=True never lands on a zero-probability id; clamp guards u * total rounding up to total.
    choice = torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True).clamp_(max=cdf.shape[1] - 1).squeeze(1)
    return choice if ids is None else ids.gather(1, choice[:, None]).squeeze(1)


@torch.no_grad()
def prime(model, stepper: Stepper, prefixes: list[str]):
    """Run each prefix through the model once: the state after it and the scores of the next character."""
    tops, states = [], []
    start = "\n" if "\n" in model.vocab else " "  # an empty prefix starts where a line starts
    for prefix in prefixes:
        ids = model.vocab.encode(prefix or start)
        out, state = model.features(torch.tensor([ids], device=model.device))
        tops.append(out[:, -1])
        states.append(state)
    if model.cell == "lstm":
        state = tuple(torch.cat([s[i] for s in states], 1) for i in range(2))
    else:
        state = torch.cat(states, 1)
    return stepper.scores(torch.cat(tops)), stepper.split_state(state)


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
    stepper = Stepper(model, temperature)
    scores, state = prime(model, stepper, prefixes)
    if temperature == 0:
        uniforms = [None] * length
    else:
        uniforms = torch.rand(length, len(prefixes), 1, generator=generator, device=model.device).unbind(0)
    for t, uniform in enumerate(uniforms):
        ids = scores.argmax(1) if uniform is None else sample(scores, top_k, top_p, uniform)
        yield ids.tolist()
        if t + 1 < length:
            scores = stepper.step(ids, state)
