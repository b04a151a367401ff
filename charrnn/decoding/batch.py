"""Sequences adjusted together, each with its own options, random stream and form (form.py), so a batch may mix them
and a seeded sequence writes the same text alone or batched; sequences join and leave between steps."""
import math
from collections import deque
from collections.abc import Iterator

from ..form import REWIND_STEPS, Candidate, Options, Sequence, Step
from .sample import Sampler, Uniforms, lift, obey
from .step import Next, Stepper, prime

BEAM = 8  # English words weighed at once when a line's last word is chosen among those that keep the form
LOOK_AHEAD = 4  # candidates for a rhyming line end weighed by the line break after them (bench/form.py)
SHARPEN = 2  # ... and drawn cooler: among a few rhyming characters the likeliest reads best
DOMINANT = 0.5  # ... unless one has this share of the rhyming mass already


def pieces(batch: "Batch") -> Iterator:
    """The one sequence of batch, piece by piece; returns its Candidate where the batch is scored."""
    for step in batch:
        yield from step[0]
    return batch.candidates()[0] if batch.scored else None


def per_array(fn, *states) -> list:
    """fn over the arrays of states, layer by layer (an LSTM layer is (h, c), any other layer h)."""
    return [tuple(map(fn, *layers)) if isinstance(layers[0], tuple) else fn(*layers) for layers in zip(*states)]


class Batch:
    """Sequences adjusted together: each step, every unfinished one gets a character, chosen its own way.

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
        self.state = self.probs = self.weights = self.history = self.pending = None
        self.number, self.ahead = 0, {}  # ahead: row -> (candidates, their states, their logits) of a look-ahead
        self.join(list(prefixes), [Sequence(model, prefix, length, option, details)
                                   for prefix, option in zip(prefixes, options, strict=True)])

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
        probs, weights = self.distributions(scores, first)
        if not first:
            self.state, self.probs, self.weights = state, probs, weights
            return
        cat = self.ops.cat
        self.state = per_array(lambda old, new: cat([old, new]), self.state, state)
        self.probs, self.weights = cat([self.probs, probs]), cat([self.weights, weights])
        if self.history:  # the newcomers never rewind to before they joined: any rows will do there
            self.history = deque(((per_array(lambda old, new: cat([old, new]), saved, state),
                                   cat([saved_probs, probs]), cat([saved_weights, weights]))
                                  for saved, saved_probs, saved_weights in self.history), maxlen=REWIND_STEPS)

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
            self.state = self.probs = self.weights = self.pending = None
        else:
            index = self.array(keep)
            take = lambda x: x[index]  # noqa: E731
            self.state, self.probs, self.weights = per_array(take, self.state), take(self.probs), take(self.weights)
            if self.history:
                self.history = deque(((per_array(take, saved), take(probs), take(weights))
                                      for saved, probs, weights in self.history), maxlen=REWIND_STEPS)
        self.arrange()

    def arrange(self) -> None:
        """What each step needs to know of the sequences' options, worked out once whenever they change."""
        options = [s.options for s in self.sequences]
        self.sampler = Sampler(self.ops, options, self.array)
        self.penalised = [row for row, option in enumerate(options) if option.repetition_penalty != 1]
        self.details = any(s.details for s in self.sequences)
        self.rewinds = any(option.rewinds for option in options)
        if not self.rewinds:
            self.history = None
        elif self.history is None:  # a rhyming sequence rewinds no further back than the step it joined at
            self.history = deque(maxlen=REWIND_STEPS)

    def step(self) -> list[list]:
        """A character for every unfinished sequence; per sequence, what became final (characters, or Steps)."""
        self.advance()
        number = self.number
        if self.history is not None:
            self.history.append((list(self.state), self.probs, self.weights))
        ids, steps = self.choose(self.probs, self.weights, self.state)
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
            saved = self.history[rewinds[0] - number - 1] if rewinds else None
            self.probs, self.weights = self.lone_step(saved, ids[0], self.state)
            return
        self.probs, self.weights = self.distributions(self.stepper.step(self.array(ids), self.state))
        for row, back in rewinds.items():
            self.restore(row, self.history[back - number - 1], self.state, self.probs, self.weights)

    def logprobs(self, ids: list[int]) -> list[float]:
        """Each sequence's log-probability of its chosen character under the model."""
        chosen = self.probs[self.array(list(range(len(ids)))), self.array(ids)].tolist()
        return [math.log(max(v, 1e-45)) for v in chosen]

    def lone_step(self, saved, i: int, state: list):
        """A lone stream's next (probs, weights) without a step: back to a saved step when it rewound, else the
        look-ahead's row for the character chosen (its step is already done)."""
        if saved is not None:
            saved_state, probs, weights = saved
            state[:] = saved_state
            return probs, weights
        candidates, rows, scores = self.ahead[0]
        k = candidates.index(i)
        state[:] = [tuple(x[k:k + 1] for x in layer) if isinstance(layer, tuple) else layer[k:k + 1] for layer in rows]
        return self.distributions(Next(scores.logits[k:k + 1], scores.previous[k:k + 1]))

    def distributions(self, scores: Next, first: int = 0):
        """(probs, weights) [B, V] for the sequences from `first` on: the model's next-character distribution (what
        scoring uses), and the decoding weights (the repetition penalty where asked for, the smoothing prior taken
        back out)."""
        probs = self.stepper.distribution(scores)
        penalised = [row for row in self.penalised if row >= first]
        if not penalised:
            return probs, self.stepper.weights(probs)
        adjusted = self.ops.copy(probs) if self.scored else probs  # unscored, probs is this step's own to change
        for row in penalised:
            s = self.sequences[row]
            used = s.penalised()
            if len(used):  # CTRL's penalty as transformers applies it: a used character's logit / θ if > 0, else * θ
                theta, before = s.options.repetition_penalty, self.stepper.penalisable(scores, probs, row - first, used)
                after = self.ops.xp.where(before > 0, before / theta, before * theta)
                # The softmax of the penalised scores, changed only where they changed: probs times exp(after - before)
                # there, renormalised (a few used ids, not the whole vocabulary twice).
                row_probs = adjusted[row - first]
                row_probs[used] *= self.ops.xp.exp(after - before)
                row_probs /= row_probs.sum()
        return probs, self.stepper.weights(adjusted)  # unscored, probs is adjusted: the penalised distribution

    def restore(self, row: int, saved, state: list, probs, weights) -> None:
        """Put one sequence back where it was at an earlier step (the arrays of a step are never changed later)."""
        saved_state, saved_probs, saved_weights = saved
        for k, layer in enumerate(saved_state):
            for now, then in zip(state[k] if isinstance(layer, tuple) else [state[k]],
                                 layer if isinstance(layer, tuple) else [layer]):
                now[row] = then[row]
        probs[row], weights[row] = saved_probs[row], saved_weights[row]

    def choose(self, probs, weights, state) -> tuple[list[int], list[Step | None]]:
        """Each sequence's next id, by its own rule and options, and its Step when details are asked for."""
        for row, s in enumerate(self.sequences):
            if s.plans_ending():
                word = self.likeliest_word(row, s, probs, state)
                if not word and s.loosen_ending():  # the rhyme's only words are keywords written already
                    word = self.likeliest_word(row, s, probs, state)
                s.plan(word)
        rules = [s.rule() for s in self.sequences]
        self.ahead = {}
        if all(rule.forced is not None or s.done for rule, s in zip(rules, self.sequences)):
            ids = [rule.forced or 0 for rule in rules]  # nothing to draw (the form decides, or all are done)
            for u in self.uniforms:  # each sequence still uses up its number: its draws stay where they'd be batched
                u.next()
            return ids, [Step(self.itos[i], 1.0, forced=True) if s.details else None
                         for i, s in zip(ids, self.sequences)]
        drawn_from = self.ruled(probs, weights, rules)
        if self.rewinds:
            for row, s in enumerate(self.sequences):
                if rules[row].allowed is not None and s.closes_line():
                    self.look_ahead(row, drawn_from, state, rules[row].allowed)
        drawn_from = self.sampler.shaped(drawn_from)
        ids = self.sampler.draw(drawn_from, [u.next() for u in self.uniforms])
        for row, rule in enumerate(rules):
            if rule.forced is not None:
                ids[row] = rule.forced
        if not self.details:
            return ids, [None] * len(ids)
        return ids, [self.step_details(drawn_from[row], ids[row], rules[row].forced is not None) if s.details else None
                     for row, s in enumerate(self.sequences)]

    def likeliest_word(self, row: int, s, probs, state) -> list[int]:
        """A line's last English word, chosen whole among the words that keep the form (s.ending, a trie): a beam
        search scores them by the model, the break after each included, so the line ends on a word the model would
        end it on; one is drawn among those found by its probability, at the row's temperature (a word that ended a
        line already only where no other was found, a keyword written never)."""
        beams, found = [((), s.ending, 0.0)], []
        after = s.newline if s.ending_final else s.space
        budget = s.length - len(s.chars) - s.reserve_after_line()
        row_probs, rows = probs[row:row + 1], per_array(lambda x: self.ops.rows_of(x, row, 1), state)
        while beams:
            p = row_probs.tolist()
            grown = sorted(((logp + math.log(max(p[b][i], 1e-45)), b, i, child) for b, (_, node, logp) in
                            enumerate(beams) for i, child in node.children.items()
                            if len(beams[b][0]) + 1 + child.shortest < budget), key=lambda g: -g[0])[:BEAM]
            if not grown:
                break
            index = self.array([b for _, b, _, _ in grown])
            rows = per_array(lambda x: x[index], rows)
            row_probs = self.stepper.distribution(self.stepper.step(self.array([i for _, _, i, _ in grown]), rows))
            ends = row_probs[:, after].tolist()
            found += [(logp + math.log(max(end, 1e-45)), beams[b][0] + (i,))
                      for (logp, b, i, child), end in zip(grown, ends) if child.terminal]
            beams = [(beams[b][0] + (i,), child, logp) for logp, b, i, child in grown if child.children]
        ended, held = s.used_words()
        begun = tuple(s.ids[s.ending_start:])  # the start of the word, where it was drawn already
        found = [(logp, word) for logp, word in found if begun + word not in held]
        fresh = [(logp, word) for logp, word in found if begun + word not in ended]
        if not found:
            return []
        return list(self.drawn(fresh or found, s.options.temperature, self.uniforms[row].next()))

    @staticmethod
    def drawn(found: list[tuple[float, tuple]], temperature: float, uniform: float) -> tuple:
        """One of (log-probability, word) found, by its probability tempered (the likeliest at temperature 0)."""
        found.sort(key=lambda f: -f[0])
        if temperature == 0:
            return found[0][1]
        weights = [math.exp((logp - found[0][0]) / temperature) for logp, _ in found]
        point, total = uniform * sum(weights), 0.0
        for weight, (_, word) in zip(weights, found):
            total += weight
            if point < total:
                return word
        return found[-1][1]

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

    def ruled(self, probs, weights, rules):
        """weights with what each row's rule bans zeroed, or all but what it allows, and the shares it lifts lifted.
        Where the rule leaves nothing, the row falls back to the model's own distribution probs under the same rule."""
        if all(rule.allowed is None and not rule.banned and not rule.lifted for rule in rules):
            return weights
        kept = self.ops.copy(weights)
        for row, (_, allowed, banned, lifted) in enumerate(rules):
            if (allowed is not None or banned) and not obey(kept[row], allowed, banned):
                for bans in (banned, []):  # where the bans leave nothing even in probs, the form's rule wins
                    kept[row] = probs[row]
                    kept[row, self.stepper.unk] = 0
                    if obey(kept[row], allowed, bans):
                        break
            if lifted:
                lift(kept[row], {i: share for i, share in lifted.items() if i not in banned})
        return kept

    def step_details(self, weights, i: int, forced: bool) -> Step:
        char = self.itos[i]
        if forced:
            return Step(char, 1.0, forced=True)
        total = float(weights.sum())
        values, ids = self.ops.topk(weights[None], min(6, weights.shape[0]))
        alternatives = tuple((self.itos[int(j)], float(v) / total)
                             for v, j in zip(values[0].tolist(), ids[0].tolist()) if j != i and v > 0)[:5]
        return Step(char, float(weights[i]) / total, alternatives)
