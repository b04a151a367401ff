"""One sequence being written: its options, its text so far, and the form it must keep.

Form means lines (stop after N), an acrostic (line i begins with character i), a melody's line lengths (each line
so many sung characters, or in English syllables), a rhyme scheme (AABB: lines with one letter end in one rhyme; the
rhyme option is the scheme AAAA), keywords (words the lyric must hold, each once) and no loops (no n-gram twice, a
penalty on characters already used). Each step a Sequence says what it allows (`rule`), then takes the character
chosen (`take`).

The form does not bend the lines: the model ends each line where it likes, and where a line's last token breaks the
form (it does not rhyme; in English, its word overshoots the syllables or leaves the count unknown), the sequence
rewinds to that token and redraws it from the tokens that keep the form (the model's own probabilities,
restricted), then ends the line. So such a sequence holds back its last token until the next one starts. A Chinese
line of a given length has its last character drawn from the ones that keep it, weighed by how likely the model
finds the line's end after each (batch.look_ahead), so a line is not cut where the model was sure a word goes on.
A keyword is placed where the model likes its first character: at each place it fits, its share is lifted to at
least one in the places left, and it is written whole once begun; where the rest of the lyric could no longer hold
the keywords left, it is written there.
"""
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import limits
from . import song
from .errors import NoLineBreak, NoRhyme, BadValue, TooShort, UnknownCharacters
from .rhyme import LETTERS, MAX_WORD, WELL_RHYMED, is_letter, is_sung, scheme_for, syllables, words_of


class Rule(NamedTuple):
    """What a sequence allows next: a forced id, or the only ids allowed (None: all) less the banned ones, with some
    ids' shares lifted to at least the share given (keywords)."""
    forced: int | None = None
    allowed: list[int] | None = None
    banned: list[int] | tuple = ()
    lifted: dict[int, float] | None = None


FREE = Rule()  # leaves the next character to the model
REWINDS = 8  # redraws a line may have: past them, it keeps what it has (no form loops forever)
REWIND_STEPS = 40  # how far back a rhyming line may redraw its last token (longer than any word offered)
WORD_UNITS = {"zh": 1, "en": 2}  # the units a word is taken to have, where a keyword is written before it is too late
UNIT_CHARS = {"zh": 2, "en": 6}  # characters a sung character, or a syllable, is given room for
TYPICAL_LINE = {"zh": 10, "en": 40}  # characters of a line where the lines have no lengths
TRIES = 128  # (rhyme, syllables) whose line endings a model keeps ready (a Chinese model has 13 rhymes)


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
    line_lengths: tuple[int, ...] | str | None = None  # see song.line_lengths
    scheme: str | None = None  # see song.scheme
    keywords: tuple[str, ...] | str | None = None  # see song.keywords
    keywords_in_order: bool = False

    @property
    def shapes_lines(self) -> bool:
        return bool(self.lines or self.acrostic or self.rhyme or self.line_lengths or self.scheme)

    @property
    def rewinds(self) -> bool:
        """Whether decoding may redraw a line's last token (it keeps the steps it may go back to)."""
        return bool(self.rhyme or self.scheme or self.line_lengths)


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
    if options.rhyme is not None and options.scheme:
        raise BadValue("scheme", options.scheme, "empty when a rhyme is given", "the rhyme is the scheme AAAA: give "
                       "one or the other")
    if not isinstance(options.keywords_in_order, bool):
        raise BadValue("keywords_in_order", options.keywords_in_order, "True or False")


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
    """A model's language (Chinese or English, by its vocabulary: `scheme`), the endings of each rhyme, and the ids
    a line's length counts."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.scheme = scheme_for(vocab.chars)
        # The endings of the rhymes used lately: English has thousands of rhymes, and a model writing "auto" meets
        # them all in time.
        self.trie = lru_cache(TRIES)(self.endings)
        chars = list(enumerate(vocab.itos))[1:]
        self.unsung = [i for i, c in chars if not is_sung(c) and c != "\n"]  # Chinese: what a length does not count
        self.letters = [i for i, c in chars if is_letter(c)]  # English: what continues a word
        self.breaks = [i for i, c in chars if not is_letter(c) and c != "\n"]  # English: what ends a word mid-line

    def endings(self, key: str | None, units: int | None = None) -> Trie:
        """The tokens that end a line in rhyme key (None: any), of `units` characters or syllables (None: any)."""
        known = set(self.vocab.chars) - {"\n"}
        return Trie.of([self.vocab.encode(w) for w in self.scheme.endings(key, known, units)])

    def resolve(self, rhyme: str, prefix: str, option: str = "rhyme") -> str | None:
        """The rhyme key, or None when "auto" finds none yet (the first line written then sets it)."""
        if rhyme == "auto":
            complete = prefix.split("\n")[:-1]
            return next((k for k in map(self.scheme.key, reversed(complete)) if k), None)
        key = self.scheme.parse(rhyme, option)
        if not self.trie(key).children:
            raise NoRhyme(option, rhyme)
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
            raise NoLineBreak(next(name for name in ("lines", "acrostic", "rhyme", "line_lengths", "scheme")
                                   if getattr(options, name)))
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
        self.targets = song.line_lengths(options.line_lengths)
        self.scheme = song.scheme(options.scheme)
        self.lines_to_go = options.lines
        if self.lines_to_go is None and (self.targets or self.scheme):  # one verse of the pattern, or of the scheme
            self.lines_to_go = max(len(self.targets or ()), len(self.scheme.letters if self.scheme else ""))
        # Line 0 is the first line the continuation writes on: the prefix's own, unless an acrostic first ends it.
        self.line_number = -1 if acrostic and not self.opens_line else 0
        if acrostic:  # as many lines as the acrostic has characters, or more; first a line break if the prefix needs one
            self.lines_to_go = max(self.lines_to_go or 0, len(acrostic)) + (not self.opens_line)
        self.rhymes = model.rhymes if options.rewinds or options.keywords else None
        self.language = model.rhymes.scheme
        self.keys = self.rhyme_keys(prefix)
        self.keywords = self.checked_keywords()
        self.ids: list[int] = []
        self.chars: list[str] = []
        self.logprobs: list[float] = []
        self.steps: list[Step | None] = []
        self.step_numbers: list[int] = []  # the batch step at which each character was chosen
        self.sent = 0  # characters handed out; the rest wait for the next token (a line end that may be redrawn)
        self.token_starts: list[int] = []  # where the current line's tokens start
        self.rewinds_left = REWINDS
        self.line_start = 0 if self.opens_line else None  # None: the line began in the prefix
        self.heads_written = 0
        self.on_head_line = False  # the current line began with an acrostic's character
        self.ending: Trie | None = None  # set while the last token of a line is redrawn to keep the form
        self.ending_final = True  # the token redrawn ends the line (else it leaves room for the rhyme after it)
        self.ending_units = self.ending_root = None  # the units (None: any) and tokens of the token redrawn
        self.ending_start = 0  # and where it starts
        self.space = vocab.stoi.get(" ")
        self.closing = False  # the next character ends the line (batch.look_ahead weighs it by the break after it)
        self.placing: list[int] = []  # the rest of a keyword being written
        self.planned: list[int] = []  # a line's last word chosen whole (batch.likeliest_word), and what follows it
        self.offered: dict[int, str] = {}  # first id -> the keyword it begins, where the rule lifted it this step
        self.placed = self.just_begun = None  # the keyword just written whole; the one being written
        self.kept_from = 0  # no rewind goes back before it: the end of the last keyword written
        self.keywords_pending = len(self.keywords)
        self.done = length == 0
        self.free = not (options.shapes_lines or options.no_repeat_ngram or self.keywords)  # nothing to rule
        self.flushed = 0
        self.ngrams: dict[tuple, Counter] = {}
        self.seen, self.used, self.used_array = None, [], None  # with a repetition penalty: counts, ids it applies to
        if options.repetition_penalty != 1:
            self.seen = Counter()
            for i in vocab.encode(prefix):
                self.see(i, 1)
        self.check_lines()
        if self.targets:  # the lines decide where the lyric ends: room for them, within what a request may write
            self.length = max(length, min(self.roomy_length(), limits.LENGTH.high))
        if self.lines_to_go is not None and self.length < self.reserve():
            if self.targets and self.reserve() > limits.LENGTH.high:
                raise BadValue("line_lengths", self.options.line_lengths, f"lines that fit in {limits.LENGTH.high:,} "
                               "characters", f"these need at least {self.reserve():,}")
            raise TooShort("length", self.length, self.reserve(), "the form asked")

    def roomy_length(self) -> int:
        """Characters that hold lines of the lengths asked, with room for spaces and punctuation (and in English,
        long words)."""
        lines = range(self.line_number, self.line_number + self.lines_to_go)
        return sum((self.target_of(k) or 2) * UNIT_CHARS[self.language.language] + 1 for k in lines)

    def rhyme_keys(self, prefix: str) -> dict[str, str | None]:
        """Each scheme letter's rhyme key: given, or None until its first line sets it ("auto" with the rhyme option
        reads the prefix's last line first). The rhyme option is the scheme of one letter for every line."""
        if self.options.rhyme:
            self.scheme = song.Scheme("A", {})
            return {"A": self.rhymes.resolve(self.options.rhyme, prefix)}
        if not self.scheme:
            return {}
        keys = dict.fromkeys(self.scheme.letters.replace(song.FREE, ""))
        for letter, rhyme in self.scheme.given.items():
            keys[letter] = self.rhymes.resolve(rhyme, prefix, "scheme")
        return keys

    def checked_keywords(self) -> tuple[str, ...]:
        keywords = song.keywords(self.options.keywords)
        if unknown := self.vocab.unknown("".join(keywords)):
            raise UnknownCharacters("keywords", self.options.keywords, "".join(unknown))
        if keywords and self.newline is None and self.lines_to_go is not None:
            raise NoLineBreak("keywords")
        return keywords

    def check_lines(self) -> None:
        """Line lengths that no line can keep: an acrostic's head and a rhyme need two, and the keywords room."""
        if not self.targets:
            return
        sung = self.language.units(self.prefix_line)[0] if self.line_number == 0 else 0
        if sung > self.target_of(0):
            raise TooShort("line_lengths", self.target_of(0), sung, "the prefix's unfinished line, which counts as the "
                           "first")
        letter = self.letter_of(0) if self.line_number == 0 else None
        if sung == self.target_of(0) and letter and self.keys[letter] not in (None, self.language.key(self.prefix_line)):
            raise BadValue("scheme", self.options.scheme, "a rhyme the prefix's unfinished line ends in",
                           "that line is already as long as the first line's length")
        for k in range(len(self.heads)):
            if self.target_of(k) < 1 + (self.letter_of(k) is not None):
                raise TooShort("line_lengths", self.target_of(k), 2, f"line {k + 1}: an acrostic's head and a rhyme")
        lines = range(max(self.line_number, 0), self.line_number + (self.lines_to_go or 0))
        room = [self.line_room(k, sung if k == 0 else 0) for k in lines]
        needs = [self.need(k) for k in self.keywords]
        if needs and not song.packs(needs, room, self.options.keywords_in_order):
            raise TooShort("line_lengths", sum(room), sum(needs), "the keywords (each within a line, "
                           "the line's rhyme and acrostic head left free)")

    # The current line -------------------------------------------------------------------------------

    def target_of(self, line: int) -> int | None:
        return self.targets[line % len(self.targets)] if self.targets and line >= 0 else None

    def letter_of(self, line: int) -> str | None:
        return self.scheme.letter(line) if self.scheme and line >= 0 else None

    def target(self) -> int | None:
        return self.target_of(self.line_number)

    def key_letter(self) -> str | None:
        """The current line's scheme letter, where its rhyme is not set yet (its first line sets it)."""
        letter = self.letter_of(self.line_number)
        return letter if letter and self.keys.get(letter) is None else None

    def key(self) -> str | None:
        """The rhyme the current line must end in: None where it is free, or sets its letter's rhyme."""
        letter = self.letter_of(self.line_number)
        return self.keys.get(letter) if letter else None

    def line_text(self) -> str:
        return (self.prefix_line if self.line_start is None else "") + "".join(self.chars[self.line_start or 0:])

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
        an acrostic's line one more (outside a redrawn line end); a line of a given length a character a unit."""
        if self.lines_to_go is None:
            return 0
        if self.target() is not None:
            return max(1, self.target() - self.language.units(self.line_text())[0]) + 1 + self.reserve_after_line()
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
        if self.targets:
            later = range(self.line_number + 1, self.line_number + self.lines_to_go)
            return sum((self.target_of(k) or 2) + 1 for k in later)
        return 3 * heads + 2 * (self.lines_to_go - 1 - heads)

    # What the form allows next ------------------------------------------------------------------

    def rule(self) -> Rule:
        """What the next character may be: forced, allowed, banned, or lifted (see Rule)."""
        self.closing, self.offered = False, {}
        if self.done or self.free:
            return FREE
        newline = self.newline
        if self.planned:
            return Rule(self.planned[0])
        if self.ending is not None:  # only what still fits: the token, then the line break, then the form's rest
            budget = self.length - len(self.chars) - self.reserve_after_line()
            allowed = [i for i, child in self.ending.children.items() if child.shortest + 2 <= budget]
            after = newline if self.ending_final else self.space  # a word redrawn to make room goes on to the rhyme
            if not allowed:
                return Rule(after)
            self.closing = self.ending_final and all(not child.children for child in self.ending.children.values())
            held = self.repeated_keywords(self.keyword_pending()) if self.keywords else []
            return Rule(None, allowed + [after] * self.ending.terminal, self.repeats() + held)
        if self.placing:
            return Rule(self.placing[0])
        at_line_start = self.line_length() == 0
        if self.heads and self.line_start is None:
            return Rule(newline)  # the acrostic begins on a line of its own
        if at_line_start and self.heads_left():
            return Rule(self.heads[self.heads_written])
        banned = self.repeats()
        if self.target() is not None:
            rule = self.length_rule(banned)
            if rule is not None:
                return rule
        else:
            if self.lines_to_go is not None and self.line_can_end() and len(self.chars) + self.reserve() >= self.length:
                return Rule(newline)  # only the fewest characters still fit: end the line
            if self.options.shapes_lines and not self.line_can_end() or self.key() and not self.has_own_token():
                banned.append(newline)  # a rhyming line needs a token of its own to end on (or to redraw)
        return self.keyword_rule(banned)

    def length_rule(self, banned: list[int]) -> Rule | None:
        """The rule of a line of a given length (None: the keywords' rule decides, with banned): it ends once it has
        its units; in Chinese, its last character is one that keeps its rhyme; in English, a word that makes the
        count ends only at the line's end, and the line does not end short."""
        target, newline = self.target(), self.newline
        units, word = self.language.units(self.line_text())
        if self.language.language == "zh":
            if units >= target:
                return Rule(newline)
            if units == target - 1:
                self.closing = True
                return Rule(None, list(self.rhymes.trie(self.key(), 1).children), banned)
            banned.append(newline)
            if len(self.chars) + self.reserve() >= self.length:
                banned += self.rhymes.unsung  # no room left for what is not sung
            return None
        if not word:
            if units >= target:
                return Rule(newline)
            banned.append(newline)
            return None
        count = syllables(word)
        so_far = units + (self.language.word_units(word) if count is None else count)
        if count is not None and so_far == target:
            banned += self.rhymes.breaks  # the word that makes the count ends the line, or goes on
        elif so_far < target:
            banned.append(newline)
        if count is None and so_far > target or len(word) >= MAX_WORD:
            banned += self.rhymes.letters  # a word past the count ends now, while it can still be redrawn
        return None

    def plans_ending(self) -> bool:
        """Whether the line's last token is about to be redrawn as a whole English word (see plan)."""
        return self.ending is not None and not self.planned and not self.done and self.language.language == "en"

    def used_words(self) -> tuple[set, set]:
        """Words, as ids, that a line's last word should not be: the last words of the lines written (where others
        can be found), and the keywords written (each once)."""
        lines = "".join(self.chars).split("\n")[:-1]
        held = set(self.keywords) - set(self.keyword_pending()) if self.keywords else set()
        return ({tuple(self.vocab.encode(w[-1])) for w in map(words_of, lines) if w},
                {tuple(self.vocab.encode(word)) for word in held})

    def loosen_ending(self) -> bool:
        """Let the rhyme of a line end about to be redrawn give way to its length (and the keywords); whether it
        did."""
        if self.ending_units is None or self.ending is not self.ending_root:  # a character of it drawn already
            return False
        self.ending = self.ending_root = self.rhymes.trie(None, self.ending_units)
        return True

    def plan(self, word: list[int]) -> None:
        """Write word, then end the line (or, a word that makes room for the rhyme, a space); none found: the
        trie is drawn from character by character."""
        if word:
            after = self.newline if self.ending_final else self.space
            self.planned, self.ending = [*word, after], None

    @property
    def token_start(self) -> int | None:
        """Where the current line's last token starts."""
        return self.token_starts[-1] if self.token_starts else None

    def has_own_token(self, start: int | None = None) -> bool:
        """Whether the current line has a token (the last, or the one at start) that decoding may redraw: one
        written here and not sent yet, not an acrostic's head nor part of a keyword."""
        start = self.token_start if start is None else start
        return start is not None and start >= max(self.sent, self.kept_from) and self.rewinds_left > 0 and not (
            self.on_head_line and start == self.line_start)

    def closes_line(self) -> bool:
        """Whether the next character ends the line: a line break must follow it (rule() says)."""
        return self.closing and not self.done

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

    # Keywords -----------------------------------------------------------------------------------

    def need(self, keyword: str) -> int:
        """What a keyword takes of a line: its units where lines have lengths, else its characters (and a space)."""
        if self.targets:
            return self.language.word_units(keyword)
        return len(keyword) + (self.language.language == "en")

    def line_room(self, line: int, units: int = 0) -> int:
        """The units a line has for keywords, `units` of it written: its length, less its acrostic head and its last
        word, which keeps its rhyme (and in Chinese, is drawn to end the line)."""
        last = WORD_UNITS[self.language.language] if self.letter_of(line) is not None else self.language.language == "zh"
        return max(self.target_of(line) - units - (line < len(self.heads) and not units) - last, 0)

    def room_of_lines(self, lines) -> list[int]:
        return [self.line_room(k) for k in lines]

    def budget(self) -> int:
        """Characters left for keywords where lines have no lengths: what the length leaves, or at most a typical
        line's for each line left."""
        left = self.length - len(self.chars) - self.reserve()
        lines = self.lines_to_go
        if lines is None:
            return left
        return min(left, lines * TYPICAL_LINE[self.language.language] - len(self.line_text()))

    def room_after(self) -> list[int]:
        """Room left for keywords after the word the next character begins, line by line (where lines have no
        lengths, one line of the characters left, less an English word: keywords are written before they run out)."""
        if not self.targets:
            return [self.budget() - (MAX_WORD if self.language.language == "en" else 1)]
        units = self.language.units(self.line_text())[0]
        later = range(self.line_number + 1, self.line_number + (self.lines_to_go or 1))
        word = WORD_UNITS[self.language.language]  # what the next character's word may take of the line
        return [max(self.line_room(self.line_number, units) - word, 0), *self.room_of_lines(later)]

    def keyword_pending(self, word_ended: bool = False) -> list[str]:
        """The keywords not written yet (in English, as whole words: the last word counts once it has ended)."""
        english = self.language.language == "en"
        text = "".join(self.chars)
        text = text.rstrip(LETTERS) if english and not word_ended else text
        return song.pending(self.keywords, text, self.options.keywords_in_order, english)

    def fits_here(self, keyword: str) -> bool:
        """Whether a keyword may begin at the next character: after a space or at a line's start in English, within
        the line's room (where it would end the line, it keeps the line's rhyme and, in English, its count is
        known)."""
        if self.language.language == "en" and not self.at_word_start():
            return False
        if not self.targets:
            return self.length - len(self.chars) - self.reserve() >= self.need(keyword)
        units = self.language.units(self.line_text())[0]
        left, need, key = self.target() - units, self.need(keyword), self.key()
        if need < left:
            return True
        rhymes = key is None or self.language.key(keyword) == key
        known = self.language.language == "zh" or syllables(keyword) is not None
        return need == left and rhymes and known

    def previous(self) -> str:
        """The character before the next: the last written, or the prefix's."""
        return self.chars[-1] if self.chars else self.prefix_line[-1:] or "\n"

    def at_word_start(self) -> bool:
        return self.previous().isspace()

    def keyword_rule(self, banned: list[int]) -> Rule:
        """Lift each keyword that fits here to at least one share in the places left, or write one here where the
        rest of the lyric could no longer hold them; after one, no line break that would redraw it."""
        rule = Rule(None, None, banned)
        if self.placed and self.language.language == "en":
            banned += self.rhymes.letters  # the keyword is a whole word
        ends_on_keyword = self.token_start is not None and self.token_start < self.kept_from
        if ends_on_keyword and self.key() and self.language.key(self.line_text()) != self.key():
            banned.append(self.newline)  # no line ends on a keyword that does not rhyme: it cannot be redrawn
        if not self.keywords:
            return rule
        pending = self.keyword_pending()
        banned += self.repeated_keywords(pending)
        if not pending:
            return rule
        if self.lines_to_go == 1 and not self.targets:
            banned.append(self.newline)  # the lyric does not end before the keywords are in
        due = not song.packs([self.need(k) for k in pending], self.room_after(), self.options.keywords_in_order)
        here = [k for k in (pending[:1] if self.options.keywords_in_order else pending) if self.fits_here(k)]
        if due and not here and self.language.language == "en" and self.targets is None:
            if is_letter(self.previous()):
                banned += self.rhymes.letters  # end the word: the keyword is due
            elif self.space is not None and self.previous() != "\n":
                return Rule(self.space)  # after punctuation, a space for it
        if not here:
            return rule
        if due:
            keyword = max(here, key=len)
            self.offered = {self.vocab.stoi[keyword[0]]: keyword}
            return Rule(self.vocab.stoi[keyword[0]])
        room = self.room_after()
        share = 1 / (1 + (sum(room) if self.targets else self.budget()))
        self.offered = {self.vocab.stoi[k[0]]: k for k in sorted(here, key=len)}
        return Rule(None, None, banned, {i: share for i in self.offered})

    def repeated_keywords(self, pending: list[str]) -> list[int]:
        """Ids that would write a keyword the lyric holds a second time, or in order, one before its turn (in English,
        as a word of its own: a one-letter keyword is kept from ending its word instead)."""
        text, banned, english = "".join(self.chars), [], self.language.language == "en"
        waiting = pending[1:] if self.options.keywords_in_order else []
        for keyword in (k for k in self.keywords if k not in pending or k in waiting):
            before = text[:len(text) - len(keyword) + 1][-1:]
            if not english:
                banned += [self.vocab.stoi[keyword[-1]]] if text.endswith(keyword[:-1]) else []
            elif len(keyword) == 1:
                at_start = text[-2:-1] == "" or not is_letter(text[-2:-1])
                banned += self.rhymes.breaks + [self.newline] if at_start and text[-1:].lower() == keyword.lower() else []
            elif not (before and is_letter(before)) and text.lower().endswith(keyword[:-1].lower()):
                banned += [i for i in map(self.vocab.stoi.get, {keyword[-1].lower(), keyword[-1].upper()}) if i]
        return banned

    # Taking a character -----------------------------------------------------------------------

    def take(self, i: int, logprob: float, step: Step | None, step_number: int) -> int | None:
        """Append the chosen id; returns the batch step to rewind this sequence to, or None."""
        char, self.step_count = self.vocab.itos[i], step_number
        if self.ending is None and not self.placing and not self.planned and self.rhymes and self.line_length() != 0:
            rewind = self.ends_or_rewinds(char)
            if rewind is not None:
                return rewind
        if self.planned:
            self.planned.pop(0)
        self.placed = None
        if self.placing:
            self.placing.pop(0)
            if not self.placing:
                self.placed = self.just_begun
        elif i in self.offered:
            keyword = self.offered[i]
            self.placing, self.just_begun = self.vocab.encode(keyword[1:]), keyword
            if not self.placing:
                self.placed = keyword
        if self.ending is not None and char != "\n":
            self.ending = self.ending.children.get(i)  # None: the word redrawn to make room is done
        elif self.options.rewinds and self.language.starts_token(self.previous(), char):
            self.token_starts.append(len(self.chars))
            held = 2 if self.targets and self.keys and self.language.language == "en" else 1
            if len(self.token_starts) >= held:  # never back: what was sent stays sent, after a rewind too
                self.sent = max(self.sent, self.token_starts[-held])
        self.append(i, char, logprob, step, step_number)
        if self.keywords:
            pending = len(self.keyword_pending())
            if self.placed or pending < self.keywords_pending:  # one just written: no redraw goes back into it
                self.kept_from = len(self.chars)
            self.keywords_pending = pending
        if char == "\n":
            self.end_line()
        elif self.line_length() == 1 and self.heads_left():
            self.heads_written, self.on_head_line = self.heads_written + 1, True
        if len(self.chars) >= self.length:
            self.done = True
        if self.done or not self.options.rewinds:
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
        letter = self.letter_of(self.line_number)
        line = self.line_text()[:-1]
        if letter and self.keys.get(letter) is None:
            self.keys[letter] = self.language.key(line)  # the first line of a letter sets its rhyme
        self.line_start, self.token_starts, self.ending, self.on_head_line = len(self.chars), [], None, False
        self.rewinds_left = REWINDS
        self.line_number += 1
        self.sent = len(self.chars)
        if self.lines_to_go is not None:
            self.lines_to_go -= 1
            self.done = self.lines_to_go == 0

    def ends_or_rewinds(self, char: str) -> int | None:
        """Where char ends the line (or, in English, a word of a line of given syllables): keep it if the line keeps
        its form, else rewind to its last token and redraw that from the tokens that do."""
        target, english = self.target(), self.language.language == "en"
        word_ends = english and target is not None and not is_letter(char) and self.chars and is_letter(self.chars[-1])
        if char != "\n" and not word_ends:
            return None
        line, key = self.line_text(), self.key()
        units, word = self.language.units(line)
        if target is not None and english:
            if not word and (last := words_of(line)[-1:]):  # it ends after punctuation: its last word is redrawn
                word, units = last[0], units - self.language.word_units(last[0])
            count = syllables(word) if word else None
            if word and (rescued := self.keyword_instead(word, units)) is not None:
                return rescued
            if char != "\n":  # a word ends mid-line: redraw it if it overshoots, or may reach the count unknown
                if units + (self.language.word_units(word) if count is None else count) < target:
                    return None
                if count is not None and units + count == target:
                    return None
            elif word and count is not None and units + count == target and (
                    self.language.key(line) == key if key else self.language.well_rhymed(line) or not self.key_letter()):
                return None
            return self.rewind(key or (WELL_RHYMED if self.key_letter() else None), target - units)
        if char != "\n":
            return None
        if key is None:  # a letter's first line sets its rhyme: in English, on a word with rhymes enough
            letter = self.letter_of(self.line_number)
            well_rhymed = letter and english and target is None and not self.language.well_rhymed(line)
            return self.rewind(WELL_RHYMED, None) if well_rhymed else None
        return None if self.language.key(line) == key else self.rewind(key, 1 if target is not None else None)

    def keyword_instead(self, word: str, units: int) -> int | None:
        """Where the English word just ended leaves no room for the keywords still to write, rewind to its start and
        write one there (the batch step to rewind to); None where there is room, or no keyword fits there."""
        pending = self.keyword_pending(word_ended=True) if self.keywords else []
        later = range(self.line_number + 1, self.line_number + (self.lines_to_go or 1))
        room = [self.line_room(self.line_number, units + self.language.word_units(word)), *self.room_of_lines(later)]
        if not pending or not self.has_own_token() or song.packs([self.need(k) for k in pending], room,
                                                                 self.options.keywords_in_order):
            return None
        left, key = self.target() - units, self.key()
        fits = [k for k in (pending[:1] if self.options.keywords_in_order else pending) if self.need(k) < left or (
            self.need(k) == left and syllables(k) is not None and (key is None or self.language.key(k) == key))]
        if not fits or not self.within_reach(self.token_start):
            return None
        keyword = max(fits, key=self.need)
        back = self.truncate(self.token_start)
        self.placing, self.just_begun = self.vocab.encode(keyword), keyword
        return back

    def rewind(self, key: str | None, units: int | None) -> int | None:
        """Rewind to the line's last token to redraw it from the tokens of rhyme key (None: any) and `units` units (None:
        any), where it can be; None where it cannot. Where no word of the rhyme has the syllables left, the last two
        words are redrawn as one; failing that, a word of the syllables a rhyming word would leave comes first; where
        none has fewer, the rhyme gives way to the length."""
        start = self.token_start
        if not self.has_own_token():
            return None
        trie, final = self.rhymes.trie(key, units), True
        if not trie.children and units is not None:
            before = self.token_starts[-2] if len(self.token_starts) > 1 else None
            both = units + self.language.word_units("".join(self.chars[before:start])) if before is not None else 0
            shortest = next((n for n in range(1, units) if self.rhymes.trie(key, n).children), None) if key else None
            if key and both and self.has_own_token(before) and self.rhymes.trie(key, both).children:
                start, trie, units = before, self.rhymes.trie(key, both), both
            elif shortest and self.space is not None:  # a word of the syllables left over, then the rhyme's
                trie, final = self.rhymes.trie(None, units - shortest), False
            else:
                trie = self.rhymes.trie(None, units)
        too_long = self.length - start - self.reserve_after_line() < trie.shortest + 1
        if not trie.children or not self.within_reach(start) or too_long:
            return None
        self.ending, self.ending_root, self.ending_start = trie, trie, start
        self.ending_final, self.ending_units = final, units if final else None
        return self.truncate(start)

    def within_reach(self, start: int) -> bool:
        """Whether the batch still keeps the step at which the character at start was chosen (REWIND_STEPS back)."""
        return self.step_count - self.step_numbers[start] < REWIND_STEPS

    def truncate(self, start: int) -> int:
        """Forget the characters from start on, as if they had never been written; returns the batch step
        at which the first of them was chosen."""
        n = self.options.no_repeat_ngram
        for k in range(len(self.ids) - 1, start - 1, -1):
            if n and k >= n - 1:
                self.ngrams[tuple(self.ids[k - n + 1:k])][self.ids[k]] -= 1
            if self.seen is not None:
                self.see(self.ids[k], -1)
        step_number, self.rewinds_left = self.step_numbers[start], self.rewinds_left - 1
        for items in (self.ids, self.chars, self.logprobs, self.steps, self.step_numbers):
            del items[start:]
        self.token_starts = [t for t in self.token_starts if t < start]
        return step_number

    # Handing out --------------------------------------------------------------------------

    def flush(self) -> list:
        """What became final since the last call: Steps with details, else characters."""
        ready = (self.steps if self.details else self.chars)[self.flushed:self.sent]
        self.flushed = self.sent
        return ready

    def candidate(self) -> Candidate:
        return Candidate("".join(self.chars), math.fsum(self.logprobs))
