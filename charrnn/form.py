"""One sequence being written: its options, its text so far, and the form it must keep.

Form means lines (stop after N), an acrostic (line i begins with character i), rhyme (every line ends
in one rhyme), and no loops (no n-gram twice, a penalty on characters already used). Each step a
Sequence says what it allows (`rule`), then takes the character chosen (`take`). Rhyme works without
bending the lines: the model ends each line where it likes; if the line's last token does not rhyme,
the sequence rewinds to that token and redraws it from the rhyming ones (the model's own probabilities,
restricted), then ends the line. So a rhyming sequence holds back its last token until the next one starts.
"""
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import limits
from .errors import NoLineBreak, NoRhyme, BadValue, TooShort, UnknownCharacters
from .rhyme import scheme_for

FREE = (None, None, [])  # a rule that leaves the next character to the model
REWIND_STEPS = 40  # how far back a rhyming line may redraw its last token (longer than any word offered)
TRIES = 32  # rhymes whose line endings a model keeps ready (a Chinese model has 13)


@dataclass(frozen=True)
class Options:
    """How one sequence is decoded; every option is per sequence, so one batch can mix them."""
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    lines: int | None = None
    acrostic: str | None = None
    rhyme: str | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram: int = 0

    @property
    def shapes_lines(self) -> bool:
        return bool(self.lines or self.acrostic or self.rhyme)


class Step(NamedTuple):
    """A character written, its probability under the distribution it was drawn from, and the five
    likeliest other characters of that distribution with theirs. A character the form imposed
    (an acrostic's head, a line end) was not drawn: forced, probability 1."""
    char: str
    prob: float
    alternatives: tuple[tuple[str, float], ...] = ()
    forced: bool = False


class Candidate(NamedTuple):
    """A continuation and the model's own log-probability of it (natural log, the model's distribution)."""
    text: str
    logprob: float

    @property
    def mean_logprob(self) -> float:
        return self.logprob / len(self.text) if self.text else 0.0

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean_logprob)


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def is_whole(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check(options: Options, length: int) -> None:
    """Options that no model could honour."""
    if not is_whole(length) or length < 0:  # a request's is capped by limits.LENGTH; the library's is not
        raise BadValue("length", length, "a whole number >= 0")
    if not (is_number(options.temperature) and options.temperature in limits.TEMPERATURE):
        raise BadValue("temperature", options.temperature, f"a number from {limits.TEMPERATURE}", "0 is greedy")
    if options.top_k is not None and not (is_whole(options.top_k) and options.top_k > 0):
        raise BadValue("top_k", options.top_k, "a positive whole number or None")
    if options.top_p is not None and not (is_number(options.top_p) and options.top_p in limits.TOP_P):
        raise BadValue("top_p", options.top_p, f"a number from {limits.TOP_P} or None")
    if options.seed is not None and not (is_whole(options.seed) and options.seed in limits.SEED):
        raise BadValue("seed", options.seed, f"a whole number from {limits.SEED} or None")
    if options.lines is not None and not (is_whole(options.lines) and 1 <= options.lines <= limits.LINES.high):
        raise BadValue("lines", options.lines, f"a whole number from 1 to {limits.LINES.high} or None")
    acrostic = options.acrostic
    if acrostic is not None and not (isinstance(acrostic, str) and len(acrostic) <= limits.ACROSTIC):
        raise BadValue("acrostic", acrostic, f"a string of at most {limits.ACROSTIC} characters")
    if options.rhyme is not None and not isinstance(options.rhyme, str):
        raise BadValue("rhyme", options.rhyme, "'auto', a rhyme group or None")
    if not (is_number(options.repetition_penalty) and options.repetition_penalty in limits.REPETITION_PENALTY):
        raise BadValue("repetition_penalty", options.repetition_penalty,
                         f"a number from {limits.REPETITION_PENALTY}", "1 is off")
    if not (is_whole(options.no_repeat_ngram) and options.no_repeat_ngram in limits.NO_REPEAT_NGRAM):
        raise BadValue("no_repeat_ngram", options.no_repeat_ngram, f"a whole number from {limits.NO_REPEAT_NGRAM}",
                         "0 is off")


class Trie:
    """The tokens a rhyming line may end with, as a tree of character ids."""

    def __init__(self):
        self.children: dict[int, Trie] = {}
        self.terminal = False
        self.shortest = 0  # the fewest characters from here to the end of a token

    @classmethod
    def of(cls, words: list[list[int]]) -> "Trie":
        root = cls()
        for word in words:
            node = root
            for i in word:
                node = node.children.setdefault(i, cls())
            node.terminal = True
        root.measure()
        return root

    def measure(self) -> int:
        shortest = [1 + child.measure() for child in self.children.values()]
        self.shortest = 0 if self.terminal or not shortest else min(shortest)
        return self.shortest


class Rhymes:
    """A model's rhyme scheme (Chinese or English, by its vocabulary) and the endings of each rhyme."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.scheme = scheme_for(vocab.chars)
        # The endings of the rhymes used lately: English has thousands of rhymes, and a model writing "auto" meets
        # them all in time.
        self.trie = lru_cache(TRIES)(self.endings)

    def endings(self, key: str) -> Trie:
        known = set(self.vocab.chars) - {"\n"}
        return Trie.of([self.vocab.encode(w) for w in self.scheme.endings(key, known)])

    def resolve(self, rhyme: str, prefix: str) -> str | None:
        """The rhyme key, or None when "auto" finds none yet (the first line written then sets it)."""
        if rhyme == "auto":
            complete = prefix.split("\n")[:-1]
            return next((k for k in map(self.scheme.key, reversed(complete)) if k), None)
        key = self.scheme.parse(rhyme)
        if not self.trie(key).children:
            raise NoRhyme("rhyme", rhyme)
        return key


class Sequence:
    """The text written so far for one prefix, what the form allows next, and what is ready to send."""

    def __init__(self, model, prefix: str, length: int, options: Options, details: bool = False):
        check(options, length)
        vocab = self.vocab = model.vocab
        self.options, self.length, self.details = options, length, details
        self.newline = vocab.stoi.get("\n")
        acrostic = options.acrostic or None
        if options.shapes_lines and self.newline is None:
            raise NoLineBreak(next(name for name in ("lines", "acrostic", "rhyme") if getattr(options, name)))
        if acrostic:
            if "\n" in acrostic:
                raise BadValue("acrostic", acrostic, "one line of characters (no line break)")
            if unknown := vocab.unknown(acrostic):
                raise UnknownCharacters("acrostic", acrostic, "".join(unknown))
            if options.lines is not None and options.lines < len(acrostic):
                raise TooShort("lines", options.lines, len(acrostic), "the acrostic (a line for each character)")
        self.heads = vocab.encode(acrostic) if acrostic else []
        self.opens_line = not prefix or prefix.endswith("\n")  # the first character starts a line
        self.prefix_line = prefix.split("\n")[-1]  # the start of the first line, where the prefix left it unfinished
        self.lines_to_go = options.lines
        if acrostic:  # as many lines as the acrostic has characters, or more; first a line break if the prefix needs one
            self.lines_to_go = max(options.lines or 0, len(acrostic)) + (not self.opens_line)
        self.rhymes, self.rhyme_key = None, None
        if options.rhyme:
            self.rhymes = model.rhymes
            self.rhyme_key = self.rhymes.resolve(options.rhyme, prefix)
        self.ids: list[int] = []
        self.chars: list[str] = []
        self.logprobs: list[float] = []
        self.steps: list[Step | None] = []
        self.step_numbers: list[int] = []  # the batch step at which each character was chosen
        self.sent = 0  # characters handed out; the rest wait for the next token (rhyme)
        self.token_start = None  # where the current line's last token starts
        self.line_start = 0 if self.opens_line else None  # None: the line began in the prefix
        self.heads_written = 0
        self.on_head_line = False  # the current line began with an acrostic's character
        self.ending: Trie | None = None  # set while the last token of a line is redrawn to rhyme
        self.done = length == 0
        self.free = not (options.shapes_lines or options.no_repeat_ngram)  # nothing to rule: the fast path
        self.flushed = 0
        self.ngrams: dict[tuple, Counter] = {}
        self.seen, self.used, self.used_array = None, [], None  # with a repetition penalty: counts, ids it applies to
        if options.repetition_penalty != 1:
            self.seen = Counter()
            for i in vocab.encode(prefix):
                self.see(i, 1)
        if self.lines_to_go is not None and length < self.reserve():
            raise TooShort("length", length, self.reserve(), "the form asked")

    # What the form allows next ------------------------------------------------------------------

    def line_length(self) -> int | None:
        return None if self.line_start is None else len(self.chars) - self.line_start

    def heads_left(self) -> int:
        return len(self.heads) - self.heads_written

    def line_can_end(self) -> bool:
        """No empty lines, and no line of an acrostic's character alone, when the form shapes lines."""
        n = self.line_length()
        return n is None or n > self.on_head_line

    def reserve(self) -> int:
        """The fewest characters that finish the form from here: a line needs a character and its line break,
        an acrostic's line one more (outside a redrawn line end)."""
        if self.lines_to_go is None:
            return 0
        n, heads = self.line_length(), self.heads_left()
        if self.line_can_end():
            return 1 + self.reserve_after_line(heads)
        if n == 0:  # a line yet to begin: with the next acrostic character if any is left
            head = heads > 0
            return 2 + head + self.reserve_after_line(heads - head)
        return 3 - n + self.reserve_after_line(heads)

    def reserve_after_line(self, heads: int | None = None) -> int:
        """The fewest characters of the lines after this one, `heads` of them beginning with the acrostic."""
        if self.lines_to_go is None:
            return 0
        heads = self.heads_left() if heads is None else heads
        return 3 * heads + 2 * (self.lines_to_go - 1 - heads)

    def rule(self) -> tuple[int | None, list[int] | None, list[int]]:
        """(forced id or None, the only ids allowed or None for all, ids banned) for the next character."""
        if self.done or self.free:
            return FREE
        newline = self.newline
        if self.ending is not None:  # only what still fits: the token, then the line break, then the form's rest
            budget = self.length - len(self.chars) - self.reserve_after_line()
            allowed = [i for i, child in self.ending.children.items() if child.shortest + 2 <= budget]
            if not allowed:
                return newline, None, []
            return None, allowed + [newline] * self.ending.terminal, self.repeats()
        at_line_start = self.line_length() == 0
        if self.heads and self.line_start is None:
            return newline, None, []  # the acrostic begins on a line of its own
        if at_line_start and self.heads_left():
            return self.heads[self.heads_written], None, []
        if self.lines_to_go is not None and self.line_can_end() and len(self.chars) + self.reserve() >= self.length:
            return newline, None, []  # only the fewest characters still fit: end the line
        banned = self.repeats()
        if self.options.shapes_lines and not self.line_can_end() or self.rhyme_key and not self.has_own_token():
            banned.append(newline)  # a rhyming line needs a token of its own to end on (or to redraw)
        return None, None, banned

    def has_own_token(self) -> bool:
        """Whether the current line has a token that decoding may redraw: one written here, not an acrostic's."""
        start = self.token_start
        return start is not None and not (self.on_head_line and start == self.line_start)

    def closes_line(self) -> bool:
        """Whether the next character ends a redrawn line end: a line break must follow it."""
        children = self.ending.children.values() if self.ending is not None and not self.done else ()
        return bool(children) and all(not child.children for child in children)

    def repeats(self) -> list[int]:
        """Ids that would write an n-gram of the continuation a second time (a line break never counts)."""
        n = self.options.no_repeat_ngram
        if n < 1 or len(self.ids) < n - 1:
            return []
        follows = self.ngrams.get(tuple(self.ids[len(self.ids) - n + 1:]))
        return [i for i, count in follows.items() if count and i != self.newline] if follows else []

    def penalised(self) -> np.ndarray:
        """Ids the repetition penalty applies to: every character in the text but line breaks and spaces."""
        if self.used_array is None:
            self.used_array = np.array(self.used, dtype=np.int64)
        return self.used_array

    def see(self, i: int, change: int) -> None:
        self.seen[i] += change
        if self.vocab.itos[i] in "\n \u3000":
            return
        if change > 0 and self.seen[i] == 1:
            self.used.append(i)
        elif change < 0 and self.seen[i] == 0:
            self.used.remove(i)
        else:
            return
        self.used_array = None

    # Taking a character -----------------------------------------------------------------------

    def take(self, i: int, logprob: float, step: Step | None, step_number: int) -> int | None:
        """Append the chosen id; returns the batch step to rewind this sequence to, or None."""
        char, self.step_count = self.vocab.itos[i], step_number
        if char == "\n" and self.ending is None and self.rhymes and self.line_length() != 0:
            rewind = self.rhyme_or_rewind()
            if rewind is not None:
                return rewind
        if self.ending is not None and char != "\n":
            self.ending = self.ending.children[i]
        elif self.rhymes and self.rhymes.scheme.starts_token(self.chars[-1] if self.chars else "\n", char):
            self.sent, self.token_start = len(self.chars), len(self.chars)
        self.append(i, char, logprob, step, step_number)
        if char == "\n":
            self.end_line()
        elif self.line_length() == 1 and self.heads_left():
            self.heads_written, self.on_head_line = self.heads_written + 1, True
        if len(self.chars) >= self.length:
            self.done = True
        if self.done or not self.rhymes:
            self.sent = len(self.chars)
        return None

    def append(self, i: int, char: str, logprob: float, step: Step | None, step_number: int) -> None:
        n = self.options.no_repeat_ngram
        if n and len(self.ids) >= n - 1:
            self.ngrams.setdefault(tuple(self.ids[len(self.ids) - n + 1:]), Counter())[i] += 1
        if self.seen is not None:
            self.see(i, 1)
        self.ids.append(i)
        self.chars.append(char)
        self.logprobs.append(logprob)
        self.steps.append(step)
        self.step_numbers.append(step_number)

    def end_line(self) -> None:
        self.line_start, self.token_start, self.ending, self.on_head_line = len(self.chars), None, None, False
        self.sent = len(self.chars)
        if self.lines_to_go is not None:
            self.lines_to_go -= 1
            self.done = self.lines_to_go == 0

    def rhyme_or_rewind(self) -> int | None:
        """At a line break: keep the line if it rhymes (or sets the rhyme), else rewind to its last token."""
        line = (self.prefix_line if self.line_start is None else "") + "".join(self.chars[self.line_start or 0:])
        key = self.rhymes.scheme.key(line)
        if self.rhyme_key is None:
            self.rhyme_key = key  # "auto" with no rhyme in the prefix: the first line sets it
            return None
        start = self.token_start
        if key == self.rhyme_key or not self.has_own_token() or start < self.sent:
            return None
        trie = self.rhymes.trie(self.rhyme_key)
        too_far = self.step_count - self.step_numbers[start] >= REWIND_STEPS
        too_long = self.length - start - self.reserve_after_line() < trie.shortest + 1
        if not trie.children or too_far or too_long:
            return None
        self.ending = trie
        return self.truncate(start)

    def truncate(self, start: int) -> int:
        """Forget the characters from start on, as if they had never been written; returns the batch step
        at which the first of them was chosen."""
        n = self.options.no_repeat_ngram
        for k in range(len(self.ids) - 1, start - 1, -1):
            if n and k >= n - 1:
                self.ngrams[tuple(self.ids[k - n + 1:k])][self.ids[k]] -= 1
            if self.seen is not None:
                self.see(self.ids[k], -1)
        step_number = self.step_numbers[start]
        for items in (self.ids, self.chars, self.logprobs, self.steps, self.step_numbers):
            del items[start:]
        return step_number

    # Handing out --------------------------------------------------------------------------

    def flush(self) -> list:
        """What became final since the last call: Steps with details, else characters."""
        ready = (self.steps if self.details else self.chars)[self.flushed:self.sent]
        self.flushed = self.sent
        return ready

    def candidate(self) -> Candidate:
        return Candidate("".join(self.chars), math.fsum(self.logprobs))
