"""A song's shape for co-writing, read from what a person types: a melody's line lengths ("7,7,5,7"), a rhyme scheme
("AABB", with a letter's rhyme given as "A=江阳"), and the words the lyric must hold ("雨, 回忆"). Each parser returns
the plain values decoding uses, or raises BadValue naming its option, before anything is decoded."""
import re
from typing import NamedTuple

from . import limits
from .errors import BadValue
from .rhyme import chinese_group, english_key, is_han, words_of

SEPARATORS = r"[,，、;；\s]+"
FREE = "X"  # a scheme's letter for a line that rhymes with nothing


class Scheme(NamedTuple):
    """letters: one per line ("X" free), repeated when the lyric is longer; given: letter -> the rhyme asked for it
    (a 十三辙 group, one of its characters, or an English word); the other letters take the first line's rhyme."""
    letters: str
    given: dict[str, str]

    def letter(self, line: int) -> str | None:
        letter = self.letters[line % len(self.letters)]
        return None if letter == FREE else letter


def line_lengths(value) -> tuple[int, ...] | None:
    """'7,7,5,7', '7 7 5 7' or [7, 7, 5, 7]: each line's characters (Chinese) or syllables (English); None or
    empty for none."""
    allowed = f"whole numbers from {limits.LINE_LENGTH}, such as '7,7,5,7' (at most {limits.PATTERN} of them)"
    if value is None or value == "" or value == ():
        return None
    lengths = value
    if isinstance(value, str):
        parts = [p for p in re.split(SEPARATORS, value.strip()) if p]
        if len(value) > limits.PATTERN * 4 or not all(p.isdecimal() for p in parts):
            raise BadValue("line_lengths", value, allowed)
        lengths = [int(p) for p in parts]
    if not isinstance(lengths, (list, tuple)) or not lengths or len(lengths) > limits.PATTERN:
        raise BadValue("line_lengths", value, allowed)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n in limits.LINE_LENGTH for n in lengths):
        raise BadValue("line_lengths", value, allowed)
    return tuple(lengths)


def scheme(value) -> Scheme | None:
    """'AABB', 'ABAB', 'XAXA', 'AABB CCDD' (spaces between verses are only for reading), with rhymes given as
    'A=江阳' (a group or one of its characters; English: a word): None or empty for none."""
    allowed = (f"letters A to Z, one per line (X: a free line), such as 'AABB' or 'ABAB A=江阳', at most "
               f"{limits.SCHEME} characters")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limits.SCHEME:
        raise BadValue("scheme", value, allowed)
    letters, given = "", {}
    for part in (p for p in re.split(SEPARATORS, value.strip()) if p):
        letter, equals, rhyme = part.partition("=")
        if equals:
            if len(letter) != 1 or not ("A" <= letter.upper() <= "Z") or letter.upper() == FREE or not rhyme:
                raise BadValue("scheme", value, allowed, f"{part!r}: a rhyme is given as A=江阳")
            given[letter.upper()] = rhyme
        elif all("A" <= c <= "Z" for c in part.upper()):
            letters += part.upper()
        else:
            raise BadValue("scheme", value, allowed)
    if not letters:
        raise BadValue("scheme", value, allowed)
    if missing := [letter for letter in given if letter not in letters]:
        raise BadValue("scheme", value, allowed, f"{', '.join(missing)} has a rhyme but no line")
    return Scheme(letters, given)


def keywords(value) -> tuple[str, ...]:
    """'雨, 回忆' (commas, 、 or spaces between them) or a list: words the lyric must hold, each once."""
    allowed = f"at most {limits.KEYWORDS} words of at most {limits.KEYWORD} characters, such as '雨, 回忆'"
    if value is None or value == "" or value == ():
        return ()
    if isinstance(value, str):
        if len(value) > limits.KEYWORDS * (limits.KEYWORD + 2):
            raise BadValue("keywords", value, allowed)
        value = [k for k in re.split(SEPARATORS, value.strip()) if k]
    if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) for k in value):
        raise BadValue("keywords", value, allowed)
    words = tuple(dict.fromkeys(k.strip() for k in value if k.strip()))
    if len(words) > limits.KEYWORDS or any(len(k) > limits.KEYWORD or re.search(r"\s", k) for k in words):
        raise BadValue("keywords", value, allowed)
    return words


def kept_lines(value, lines: int) -> frozenset[int]:
    """Line numbers (1 is the first) as '1,3' or [1, 3]: the lines of a lyric to keep, as indices from 0."""
    allowed = f"line numbers from 1 to {lines}, such as '1,3'"
    if value is None or value == "" or value == ():
        return frozenset()
    if isinstance(value, str):
        parts = [p for p in re.split(SEPARATORS, value.strip()) if p]
        if len(parts) > limits.LINES.high or not all(p.isdecimal() for p in parts):
            raise BadValue("keep", value, allowed)
        value = [int(p) for p in parts]
    if not isinstance(value, (list, tuple, set, frozenset)) or len(value) > limits.LINES.high:
        raise BadValue("keep", value, allowed)
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= lines for n in value):
        raise BadValue("keep", value, allowed)
    return frozenset(n - 1 for n in value)


KEPT_MARK = "*"  # a line of a lyric file that begins with it is kept (`charrnn generate --keep FILE`)


def marked(text: str) -> tuple[str, frozenset[int]]:
    """A lyric whose kept lines begin with '*' (as `--keep FILE` reads it): the lyric unmarked, the kept indices."""
    lines, kept = [], set()
    for k, line in enumerate(text.split("\n")):
        if line.startswith(KEPT_MARK):
            kept.add(k)
            line = line[len(KEPT_MARK):].lstrip()
        lines.append(line)
    return "\n".join(lines), frozenset(kept)


def found_at(keyword: str, text: str, start: int = 0, words: bool = False) -> int:
    """Where keyword first occurs in text from start (-1: nowhere); words: as a whole English word, in any case."""
    if not words:
        return text.find(keyword, start)
    match = re.compile(rf"(?<![A-Za-z']){re.escape(keyword)}(?![A-Za-z'])", re.IGNORECASE).search(text, start)
    return match.start() if match else -1


def pending(keywords: tuple[str, ...], text: str, in_order: bool, words: bool = False) -> list[str]:
    """The keywords text does not hold yet: in order, those after the last one it holds in turn."""
    if not in_order:
        return [k for k in keywords if found_at(k, text, 0, words) < 0]
    at = 0
    for n, keyword in enumerate(keywords):
        found = found_at(keyword, text, at, words)
        if found < 0:
            return list(keywords[n:])
        at = found + len(keyword)
    return []


def packs(needs: list[int], bins: list[int], in_order: bool) -> bool:
    """Whether words of these sizes fit into lines with this much room left each (in order: each word in the same
    line as the one before it or a later one); first fit, the largest first where order is free."""
    room = list(bins)
    line = 0
    for need in (needs if in_order else sorted(needs, reverse=True)):
        fits = next((k for k in range(line if in_order else 0, len(room)) if room[k] >= need), None)
        if fits is None:
            return False
        room[fits] -= need
        line = fits if in_order else 0
    return True


REWRITE_CANDIDATES = 8  # candidates for each run of lines between kept ones, weighed by the kept line after them
FORM_OF_LINES = ("acrostic", "line_lengths", "scheme", "keywords")  # what only the character model's decoder keeps


def rewrite(lyric: str, kept: frozenset[int], options: dict, seed: int | None, language: str, propose, score_after,
            check) -> str:
    """The lyric with its kept lines as they are and the others written anew, run by run of lines between kept ones.
    A run is chosen among the candidates propose(context, options, seed) gives (Candidates, each ending its lines)
    by how likely the model finds the run and the kept line after it: score_after(text, context) is the log-
    probability of text after context. A run after a kept line is written after it. Blank lines (between verses) are
    kept and are not lines of the song's form: its i-th line of words has the pattern's and the scheme's line i; a
    letter's rhyme is that of its first line in the song, kept or written; the keywords no kept line holds are shared
    out among the runs (in order, a run's after the runs before it). check(options) refuses a run's options before any
    run is written; the context a run reads, and scores the kept line after, is its last limits.PREFIX characters."""
    lines = lyric.split("\n")
    kept = kept | {k for k, line in enumerate(lines) if not line.strip()}
    runs = line_runs(len(lines), kept)
    sung = {k: n for n, k in enumerate(k for k, line in enumerate(lines) if line.strip())}  # lines of the form
    held = "\n".join(lines[k] for k in kept)
    left = [k for k in keywords(options.get("keywords")) if found_at(k, held, 0, language == "en") < 0]
    shares = [left[n * len(left) // len(runs):(n + 1) * len(left) // len(runs)] for n in range(len(runs))]
    out = {k: lines[k] for k in kept}
    for (i, j), share in zip(runs, shares):
        check(run_form(options, sung, i, j, share, out))
    for number, ((i, j), share) in enumerate(zip(runs, shares)):
        context = ("\n".join(out[k] for k in range(i)) + ("\n" if i else ""))[-limits.PREFIX:]
        found = propose(context, run_form(options, sung, i, j, share, out), run_seed(seed, number))
        found = [c for c in found if c.text.count("\n") >= j - i] or found  # a candidate cut short by its length
        after = lines[j] + "\n" if j < len(lines) else ""
        best = max(found, key=lambda c: (c.logprob + score_after(after, (context + c.text)[-limits.PREFIX:])) / (
            len(c.text) + len(after))) if after else found[0]
        written = best.text.split("\n")[:j - i]
        out.update({i + k: text for k, text in enumerate(written + ["…"] * (j - i - len(written)))})
    return "\n".join(out[k] for k in range(len(lines)))


def chained(write_line, context: str, lines: int, count: int, seed: int | None, options: dict) -> list[str]:
    """Up to count runs of `lines` lines, each line write_line(line before, seed) after the one before it, the first
    after the context's last line: a next-line model's proposals for a run, each once. None where the run's options
    ask for a form such a model cannot keep (lengths, a scheme, keywords, an acrostic); a run repeating a phrase where
    the options forbid it is left out."""
    if any(options.get(name) for name in FORM_OF_LINES):
        return []
    runs = []
    for k in range(count):
        line, written = context.rstrip("\n").split("\n")[-1], []
        for n in range(lines):
            line = write_line(line, None if seed is None else (seed + k * lines + n) % 2**32)
            written.append(line)
        runs.append("\n".join(written) + "\n")
    return [run for run in dict.fromkeys(runs) if not repeats_ngram(run, options.get("no_repeat_ngram") or 0)]


def repeats_ngram(text: str, n: int) -> bool:
    """Whether text writes an n-gram a second time as no_repeat_ngram forbids it (form.Sequence.repeats): one ending
    in a line break may come again."""
    if n < 1:
        return False
    grams = [text[k:k + n] for k in range(len(text) - n + 1) if text[k + n - 1] != "\n"]
    return len(grams) != len(set(grams))


def run_seed(seed: int | None, run: int) -> int | None:
    """A run's seed: far from the next rewrite's (seed + 1), whose candidates would otherwise be mostly the same."""
    return None if seed is None else (seed * 1_000_003 + run * limits.CANDIDATES.high) % 2**32


def line_runs(count: int, kept: frozenset[int]) -> list[tuple[int, int]]:
    """(first, end) of each run of lines not kept."""
    runs, start = [], None
    for k in range(count + 1):
        if k < count and k not in kept:
            start = k if start is None else start
        elif start is not None:
            runs.append((start, k))
            start = None
    return runs


def run_form(options: dict, sung: dict[int, int], first: int, end: int, keywords_: list[str],
             written: dict[int, str]) -> dict:
    """The options for lines first..end-1 of a song (sung: each line of words' place in the song's form): their
    lengths, scheme letters (with the rhyme of each letter's first line written or kept, given), acrostic heads and
    keywords."""
    form = dict(options, lines=end - first, keywords=tuple(keywords_) or None, rhyme=None)
    places = [sung[k] for k in range(first, end)]
    if lengths := line_lengths(options.get("line_lengths")):
        form["line_lengths"] = tuple(lengths[n % len(lengths)] for n in places)
    scheme_ = scheme(options.get("scheme")) or (Scheme("A", {} if options.get("rhyme") in (None, "auto") else
                                                         {"A": options["rhyme"]}) if options.get("rhyme") else None)
    if scheme_:
        letters = "".join(scheme_.letter(n) or FREE for n in places)
        given = dict(scheme_.given)
        for k in sorted(k for k in written if k in sung):
            letter = scheme_.letter(sung[k])
            if letter and letter not in given and (token := last_token(written[k])):
                given[letter] = token
        form["scheme"] = " ".join([letters, *(f"{letter}={rhyme}" for letter, rhyme in given.items()
                                             if letter in letters)])
    if options.get("acrostic"):
        form["acrostic"] = "".join(options["acrostic"][n] for n in places if n < len(options["acrostic"])) or None
    return form


def last_token(line: str) -> str | None:
    """A line's rhyming token, where it has one that rhymes: its last Han character, else its last English word."""
    han = [c for c in line if is_han(c)]
    if han:
        return han[-1] if chinese_group(han[-1]) else None
    words = words_of(line)
    return words[-1] if words and english_key(words[-1]) else None
