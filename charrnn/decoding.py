"""Decoding: prime the state with the prefix in one pass, then one cheap step per new character.

The step runs on the model's raw weights (a hand-written step is several times faster than calling
nn.LSTM once per character), with the embedding already multiplied into the first layer's input
weights. It is written once for numpy arrays (a single stream on a CPU) and torch tensors (batches,
GPUs): see backends.py. Every sequence of a batch keeps its own options, random stream and form
(form.py), so a batch may mix them and a seeded sequence writes the same text alone or batched.
"""
import math
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

import torch

from . import backends
from .cells import layer_weights
from .evaluate import line_start
from .vocab import normalize
from .form import REWIND_STEPS, Candidate, Options, Sequence, Step

UNIFORMS_PER_DRAW = 256
LOOK_AHEAD = 4  # candidates for a rhyming line end weighed by the line break after them (bench/form.py)
SHARPEN = 2  # ... and drawn cooler: among a few rhyming characters the likeliest reads best
DOMINANT = 0.5  # ... unless one has this share of the rhyming mass already


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
        # The count models' share of the model's probabilities (CharRNN.log_probs), and their table times that share: each
        # row's counted part after the character just read.
        self.count_share = model.count_share
        self.counts = self.array(model.count_part(model.device)) if model.count_share else None
        # A network trained with label smoothing predicts (1 - e) p + e * prior: decoding takes e * prior back out.
        self.prior = self.array(model.prior * model.smoothing * (1 - self.count_share)) if model.smoothing else None
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
        p = self.ops.softmax(scores.logits)
        if self.counts is not None:
            p *= 1 - self.count_share
            p += self.ops.rows(self.counts, scores.previous) if scores.counted is None else scores.counted
        return p

    def penalisable(self, scores: "Next", p, row: int, ids):
        """What CTRL's repetition penalty divides, at these ids of one row: the network's logits, or where the model
        mixes in a count model, the mixture's log-probabilities (the softmax of either is p)."""
        if self.counts is None:
            return scores.logits[row, ids]
        return self.ops.xp.log(p[row, ids])

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
        self.greedy = [o.temperature == 0 for o in options]
        exponents = [1 / o.temperature if o.temperature not in (0, 1) else 1.0 for o in options]
        self.tempered = any(e != 1 for e in exponents)
        self.exponent = exponents[0] if len(set(exponents)) == 1 else array([[e] for e in exponents])
        self.filters = {}  # (top_k, top_p) -> the rows that use it
        for row, o in enumerate(options):
            if o.top_k or o.top_p:
                self.filters.setdefault((o.top_k, o.top_p), []).append(row)

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


def pieces(batch: "Batch") -> Iterator:
    """The one sequence of batch, piece by piece; returns its Candidate where the batch is scored."""
    for step in batch:
        yield from step[0]
    return batch.candidates()[0] if batch.scored else None


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


def per_array(fn, *states) -> list:
    """fn over the arrays of states, layer by layer (an LSTM layer is (h, c), any other layer h)."""
    return [tuple(map(fn, *layers)) if isinstance(layers[0], tuple) else fn(*layers) for layers in zip(*states)]


class Batch:
    """Sequences decoded together: each step, every unfinished one gets a character, chosen its own way.

    Sequences may join between steps (their prefixes primed in one pass) and leave (finished or cancelled), as
    continuous batching needs (serving.py); an empty Batch(model) decodes with torch, ready for them to join.
    """

    def __init__(self, model, prefixes: list[str] = (), length: int = 0, options: list[Options] = (),
                 details: bool = False, scored: bool = False):
        """scored: keep each sequence's log-probability under the model (candidates are ranked by it)."""
        self.model, self.scored = model, scored
        self.stepper = Stepper(model, batch_size=len(prefixes))
        self.ops, self.device, self.itos = self.stepper.ops, model.device, model.vocab.itos
        self.sequences, self.uniforms = [], []
        self.state = self.p = self.q = self.history = self.pending = None
        self.number, self.ahead = 0, {}  # ahead: row -> (candidates, their states, their logits) of a look-ahead
        self.join(list(prefixes), [Sequence(model, p, length, o, details)
                                   for p, o in zip(prefixes, options, strict=True)])

    def array(self, values):
        """Plain values as an array of the stepper's kind, on the model's device."""
        return self.ops.asarray(values, self.device)

    def candidates(self) -> list[Candidate]:
        return [s.candidate() for s in self.sequences]

    def __iter__(self) -> Iterator[list[list]]:
        """Each step, per sequence, what became final: characters, or Steps with details=True."""
        while not all(s.done for s in self.sequences):
            yield self.step()

    def join(self, prefixes: list[str], sequences: list[Sequence]) -> None:
        """New sequences, one per prefix: their prefixes primed together; they write from the next step on."""
        if not sequences:
            return
        self.advance()
        self.model.eval()
        scores, state = prime(self.model, self.stepper, prefixes)
        first = len(self.sequences)
        self.sequences += sequences
        self.uniforms += [Uniforms(s.options.seed) for s in sequences]
        self.arrange()
        p, q = self.distributions(scores, first)
        if not first:
            self.state, self.p, self.q = state, p, q
            return
        cat = self.ops.cat
        self.state = per_array(lambda old, new: cat([old, new]), self.state, state)
        self.p, self.q = cat([self.p, p]), cat([self.q, q])
        if self.history:  # the newcomers never rewind to before they joined: any rows will do there
            self.history = deque(((per_array(lambda old, new: cat([old, new]), saved, state), cat([sp, p]),
                                   cat([sq, q])) for saved, sp, sq in self.history), maxlen=REWIND_STEPS)

    def leave(self, rows: list[int]) -> None:
        """Drop these sequences (finished or cancelled): no later step computes them."""
        keep = [row for row in range(len(self.sequences)) if row not in set(rows)]
        if len(keep) == len(self.sequences):
            return
        at = {row: k for k, row in enumerate(keep)}
        self.sequences, self.uniforms = [self.sequences[r] for r in keep], [self.uniforms[r] for r in keep]
        self.ahead = {}
        if self.pending is not None:
            ids, rewinds = self.pending
            self.pending = [ids[r] for r in keep], {at[r]: back for r, back in rewinds.items() if r in at}
        if not keep:
            self.state = self.p = self.q = self.pending = None
        else:
            index = self.array(keep)
            take = lambda x: x[index]  # noqa: E731
            self.state, self.p, self.q = per_array(take, self.state), take(self.p), take(self.q)
            if self.history:
                self.history = deque(((per_array(take, s), take(p), take(q)) for s, p, q in self.history),
                                     maxlen=REWIND_STEPS)
        self.arrange()

    def arrange(self) -> None:
        """What each step needs to know of the sequences' options, worked out once whenever they change."""
        options = [s.options for s in self.sequences]
        self.sampler = Sampler(self.ops, options, self.array)
        self.penalised = [row for row, o in enumerate(options) if o.repetition_penalty != 1]
        self.details = any(s.details for s in self.sequences)
        self.rewinds = any(o.rhyme for o in options)
        if not self.rewinds:
            self.history = None
        elif self.history is None:  # a rhyming sequence rewinds no further back than the step it joined at
            self.history = deque(maxlen=REWIND_STEPS)

    def step(self) -> list[list]:
        """A character for every unfinished sequence; per sequence, what became final (characters, or Steps)."""
        self.advance()
        number = self.number
        if self.history is not None:
            self.history.append((list(self.state), self.p, self.q))
        ids, steps = self.choose(self.p, self.q, self.state)
        logprobs = self.logprobs(ids) if self.scored else [0.0] * len(ids)
        rewinds = {}
        for row, s in enumerate(self.sequences):
            if not s.done:
                back = s.take(ids[row], logprobs[row], steps[row], number)
                if back is not None:
                    rewinds[row] = back
        self.pending, self.number = (ids, rewinds), number + 1
        return [s.flush() for s in self.sequences]

    def advance(self) -> None:
        """Step the state by the characters chosen last: lazily, so that a sequence leaving before it costs nothing."""
        if self.pending is None:
            return
        (ids, rewinds), self.pending, number = self.pending, None, self.number - 1
        if len(self.sequences) == 1 and (rewinds or ids[0] in self.ahead.get(0, ((),))[0]):
            self.p, self.q = self.lone_step(self.history[rewinds[0] - number - 1] if rewinds else None, ids[0],
                                            self.state)
            return
        self.p, self.q = self.distributions(self.stepper.step(self.array(ids), self.state))
        for row, back in rewinds.items():
            self.restore(row, self.history[back - number - 1], self.state, self.p, self.q)

    def logprobs(self, ids: list[int]) -> list[float]:
        """Each sequence's log-probability of its chosen character under the model."""
        chosen = self.p[self.array(list(range(len(ids)))), self.array(ids)].tolist()
        return [math.log(max(v, 1e-45)) for v in chosen]

    def lone_step(self, saved, i: int, state: list):
        """A lone stream's next (p, q) without a step: back to a saved step when it rewound, else the
        look-ahead's row for the character chosen (its step is already done)."""
        if saved is not None:
            saved_state, p, q = saved
            state[:] = saved_state
            return p, q
        candidates, rows, scores = self.ahead[0]
        k = candidates.index(i)
        state[:] = [tuple(x[k:k + 1] for x in layer) if isinstance(layer, tuple) else layer[k:k + 1] for layer in rows]
        return self.distributions(Next(scores.logits[k:k + 1], scores.previous[k:k + 1]))

    def distributions(self, scores: Next, first: int = 0):
        """(p, q) [B, V] for the sequences from `first` on: the model's next-character distribution (what scoring
        uses), and the decoding weights (the repetition penalty where asked for, the smoothing prior taken back out)."""
        p = self.stepper.distribution(scores)
        penalised = [row for row in self.penalised if row >= first]
        if not penalised:
            return p, self.stepper.weights(p)
        decoded = self.ops.copy(p) if self.scored else p  # unscored, p itself is this step's own to change
        for row in penalised:
            s = self.sequences[row]
            used = s.penalised()
            if len(used):  # CTRL's penalty as transformers applies it: a used character's logit / θ if > 0, else * θ
                theta, before = s.options.repetition_penalty, self.stepper.penalisable(scores, p, row - first, used)
                after = self.ops.xp.where(before > 0, before / theta, before * theta)
                # The softmax of the penalised scores, changed only where they changed: p times exp(after - before)
                # there, renormalised (a few used ids, not the whole vocabulary twice).
                penalised_row = decoded[row - first]
                penalised_row[used] *= self.ops.xp.exp(after - before)
                penalised_row /= penalised_row.sum()
        return p, self.stepper.weights(decoded)  # unscored, p is decoded: the penalised distribution

    def restore(self, row: int, saved, state: list, p, q) -> None:
        """Put one sequence back where it was at an earlier step (the arrays of a step are never changed later)."""
        saved_state, saved_p, saved_q = saved
        for k, layer in enumerate(saved_state):
            for now, then in zip(state[k] if isinstance(layer, tuple) else [state[k]],
                                 layer if isinstance(layer, tuple) else [layer]):
                now[row] = then[row]
        p[row], q[row] = saved_p[row], saved_q[row]

    def choose(self, p, q, state) -> tuple[list[int], list[Step | None]]:
        """Each sequence's next id, by its own rule and options, and its Step when details are asked for."""
        rules = [s.rule() for s in self.sequences]
        self.ahead = {}
        if all(forced is not None or s.done for (forced, _, _), s in zip(rules, self.sequences)):
            ids = [forced or 0 for forced, _, _ in rules]  # nothing to draw (the form decides, or all are done)
            for u in self.uniforms:  # each sequence still uses up its number: its draws stay where they'd be batched
                u.next()
            return ids, [Step(self.itos[i], 1.0, forced=True) if s.details else None
                         for i, s in zip(ids, self.sequences)]
        weights = self.ruled(p, q, rules)
        if self.rewinds:
            for row, s in enumerate(self.sequences):
                if rules[row][1] is not None and s.closes_line():
                    self.look_ahead(row, weights, state, rules[row][1])
        weights = self.sampler.shaped(weights)
        ids = self.sampler.draw(weights, [u.next() for u in self.uniforms])
        for row, (forced, _, _) in enumerate(rules):
            if forced is not None:
                ids[row] = forced
        if not self.details:
            return ids, [None] * len(ids)
        return ids, [self.step_details(weights[row], ids[row], rules[row][0] is not None) if s.details else None
                     for row, s in enumerate(self.sequences)]

    def look_ahead(self, row: int, weights, state, allowed: list[int]) -> None:
        """A redrawn line end: weigh its likeliest candidates by how likely the line break is after each, so the
        line ends on a character the model would end it on (one small batch step, once a line)."""
        values, ranked = self.ops.topk(weights[row, allowed][None], min(LOOK_AHEAD, len(allowed)))
        candidates = [allowed[k] for k, v in zip(ranked[0].tolist(), values[0].tolist()) if v > 0]
        if len(candidates) < 2 or float(values[0, 0]) >= DOMINANT * float(weights[row, allowed].sum()):
            return  # one rhyme stands out: nothing to weigh
        rows_of = self.ops.rows_of  # n copies of the row's state (numpy broadcasts one)
        rows = [tuple(rows_of(x, row, len(candidates)) for x in layer) if isinstance(layer, tuple)
                else rows_of(layer, row, len(candidates)) for layer in state]
        scores = self.stepper.step(self.array(candidates), rows)
        self.ahead[row] = candidates, rows, scores
        ends = self.stepper.distribution(scores)[:, self.sequences[row].newline]
        kept = (weights[row, candidates] * ends) ** SHARPEN
        weights[row] = 0
        weights[row, candidates] = kept

    def ruled(self, p, q, rules):
        """q with what each row's rule bans zeroed, or all but what it allows. Where that leaves nothing, the
        row falls back to the model's own distribution p under the same rule."""
        if all(allowed is None and not banned for _, allowed, banned in rules):
            return q
        weights = self.ops.copy(q)
        for row, (_, allowed, banned) in enumerate(rules):
            if (allowed is not None or banned) and not obey(weights[row], allowed, banned):
                for bans in (banned, []):  # where the bans leave nothing even in p, the form's rule wins
                    weights[row] = p[row]
                    weights[row, self.stepper.unk] = 0
                    if obey(weights[row], allowed, bans):
                        break
        return weights

    def step_details(self, weights, i: int, forced: bool) -> Step:
        char = self.itos[i]
        if forced:
            return Step(char, 1.0, forced=True)
        total = float(weights.sum())
        values, ids = self.ops.topk(weights[None], min(6, weights.shape[0]))
        alternatives = tuple((self.itos[int(j)], float(v) / total)
                             for v, j in zip(values[0].tolist(), ids[0].tolist()) if j != i and v > 0)[:5]
        return Step(char, float(weights[i]) / total, alternatives)
