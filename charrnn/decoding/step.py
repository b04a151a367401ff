"""The step: the state primed with the prefix in one pass, then one cheap recurrence step per new character, and
the model's next-character distribution after it (the network's softmax mixed with its count models' part).

The step runs on the model's raw weights (a hand-written step is several times faster than calling nn.LSTM once per
character), with the embedding already multiplied into the first layer's input weights. It is written once for
numpy arrays (a single stream on a CPU) and torch tensors (batches, GPUs): see backends.py.
"""
from typing import NamedTuple

import torch

from ..cells import layer_weights
from ..evaluate import line_start
from ..vocab import normalize
from . import backends
from .sample import without_prior


def columns(x, n: int) -> list:
    """x [B, n * H] as n views [B, H]: torch's chunk and numpy's split, spelled once."""
    size = x.shape[1] // n
    return [x[:, j * size:(j + 1) * size] for j in range(n)]


class Stepper:
    """One recurrence step for a batch of sequences, and the model's next-character distributions.

    It works on plain copies of the model's weights: numpy arrays for a single stream on a CPU, torch
    tensors otherwise (see backends.py). Nothing records gradients, so no grad-mode context is needed:
    gradio may resume a generator on another thread, where a `with torch.inference_mode()` would no
    longer hold.
    """

    @torch.no_grad()
    def __init__(self, model, batch_size: int = 1):
        self.ops = backends.for_decoding(model.device, batch_size)
        self.cell, self.unk = model.cell, model.vocab.unk_id
        layers = [[w.detach() for w in layer] for layer in layer_weights(model.rnn)]
        if self.cell != "gru":  # b_hh only ever adds to b_ih outside the GRU's reset gate
            layers = [(w_ih, b_ih + b_hh, w_hh, None) for w_ih, b_ih, w_hh, b_hh in layers]
        inputs = torch.eye(len(model.vocab), device=model.device) if model.one_hot else model.embed.weight
        w_ih0, b_ih0 = layers[0][:2]
        self.input_table = self.array(torch.addmm(b_ih0, inputs, w_ih0.t()))  # [V, G*H]: row v is token v's input
        self.layers = [(self.weight(w_ih.t()) if k else None, self.array(b_ih), self.weight(w_hh.t()), self.array(b_hh))
                       for k, (w_ih, b_ih, w_hh, b_hh) in enumerate(layers)]
        # The count models' share of the model's probabilities (CharRNN.log_probs), and their table times that share:
        # each row's counted part after the character just read.
        self.count_share = model.count_share
        self.counts = self.array(model.count_part(model.device)) if model.count_share else None
        # A network trained with label smoothing predicts (1 - e) p + e * prior: decoding takes e * prior back out.
        self.prior = self.array(model.smoothing_mass) if model.smoothing else None
        self.proj_w = self.weight(model.proj.weight.detach().t()) if model.proj else None
        self.head_w, self.head_b = self.weight(model.head.weight.detach().t()), self.array(model.head.bias.detach())

    def array(self, tensor: torch.Tensor | None):
        return None if tensor is None else self.ops.array(tensor)

    def weight(self, tensor: torch.Tensor):
        """A matrix the rows are multiplied by (x @ weight)."""
        return self.ops.weight(tensor)

    def split_state(self, state) -> list:
        """The state of nn.RNN/GRU/LSTM as a list of per-layer arrays."""
        if self.cell == "lstm":
            return [(self.array(h), self.array(c)) for h, c in zip(state[0], state[1])]
        return [self.array(h) for h in state]

    def head(self, features, previous) -> "Next":
        return Next(self.ops.affine(features, self.head_w, self.head_b), previous)

    def distribution(self, scores: "Next"):
        """The model's next-character distribution [B, V] (what scoring uses): the softmax of the network's logits,
        mixed with the count models' row after each previous character where the model mixes them in."""
        probs = self.ops.softmax(scores.logits)
        if self.counts is not None:
            probs *= 1 - self.count_share
            probs += self.ops.rows(self.counts, scores.previous) if scores.counted is None else scores.counted
        return probs

    def penalisable(self, scores: "Next", probs, row: int, ids):
        """What CTRL's repetition penalty divides, at these ids of one row: the network's logits, or where the model
        mixes in a count model, the mixture's log-probabilities (the softmax of either is probs)."""
        if self.counts is None:
            return scores.logits[row, ids]
        return self.ops.xp.log(probs[row, ids])

    def weights(self, probs):
        """What decoding draws from (see without_prior)."""
        return without_prior(self.ops, probs, self.prior, self.unk)

    def step(self, ids, state: list):
        """Advance every sequence by the tokens ids [B]; update state in place; return the next logits."""
        affine, sigmoid, tanh = self.ops.affine, self.ops.sigmoid, self.ops.xp.tanh
        x = None
        for k, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.layers):
            gi = self.ops.rows(self.input_table, ids) if k == 0 else affine(x, w_ih, b_ih)
            if self.cell == "lstm":
                h, c = state[k]
                in_gate, forget, candidate, out_gate = columns(affine(h, w_hh, gi), 4)
                c = sigmoid(forget) * c + sigmoid(in_gate) * tanh(candidate)
                x = sigmoid(out_gate) * tanh(c)
                state[k] = (x, c)
            elif self.cell == "gru":
                h = state[k]
                (gi_r, gi_z, gi_n), (gh_r, gh_z, gh_n) = columns(gi, 3), columns(affine(h, w_hh, b_hh), 3)
                r, z = sigmoid(gi_r + gh_r), sigmoid(gi_z + gh_z)
                n = tanh(gi_n + r * gh_n)
                x = state[k] = n + z * (h - n)
            else:
                x = state[k] = tanh(affine(state[k], w_hh, gi))
        return self.head(x if self.proj_w is None else x @ self.proj_w, ids)


class Next(NamedTuple):
    """What a step leaves for the next character: the network's logits [B, V] and the characters just read [B]
    (the count models' rows), or the count models' part itself [B, V] where a row is not that of an id (a prefix
    ending in a character outside the vocabulary). The softmax is taken once, where the distribution is made
    (Stepper.distribution)."""
    logits: object
    previous: object
    counted: object = None


@torch.no_grad()
def prime(model, stepper: Stepper, prefixes: list[str]):
    """Run the prefixes through the model, those of one length together: the next-character logits after
    each and the state, in the order given."""
    prefixes = [normalize(prefix, model.vocab.newlines) or line_start(model.vocab) for prefix in prefixes]
    encoded = [model.vocab.encode(prefix) for prefix in prefixes]
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
    last = stepper.ops.asarray([ids[-1] for ids in encoded], model.device)
    scores = stepper.head(stepper.array(torch.cat(tops)[order]), last)
    if stepper.counts is not None and any(prefix[-1] not in model.vocab for prefix in prefixes):
        # the count models read the character itself, even outside the vocabulary
        counted = model.count_rows([prefix[-1] for prefix in prefixes]) * model.count_share
        scores = scores._replace(counted=stepper.array(counted))
    return scores, stepper.split_state(state)
