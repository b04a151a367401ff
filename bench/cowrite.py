"""Co-writing, measured: how often the form holds (line lengths, rhyme schemes, keywords, kept lines) by the
independent checks of bench/checks.py, what it costs in naturalness, and what it costs in decoding speed.

python -m bench.cowrite   (needs models/jaychou-lstm and models/timemachine-lstm: make models)

Naturalness is the model's own mean log-probability per character of a lyric (CharRNN.score, from a line start),
higher is more natural: constrained lyrics against unconstrained ones of as many lines (the same seeds), and against
a naive method that keeps the same form by force: the unconstrained text cut at each line's length (English: whole
words until the syllables are reached), each keyword put at the start of a line, an acrostic's character at the
start of its line, and the last character (English: word) of a rhyming line swapped for one of its letter's rhyme
(a random one the model knows; a letter's rhyme is its first line's).
"""
import random
from pathlib import Path

from charrnn import CharRNN, song
from charrnn.decoding import Batch
from charrnn.form import Options

from . import checks
from .common import best_rates, table

SEEDS, TEMPERATURE, LENGTH = 50, 0.8, 1000
TIMING_ROUNDS = 5
CORPORA = {  # model, its settings: name -> form
    "Jay Chou lyrics": (Path("models/jaychou-lstm"), {
        "line lengths 7,7,5,7": dict(line_lengths="7,7,5,7"),
        "7,7,5,7 + scheme AABB": dict(line_lengths="7,7,5,7", scheme="AABB"),
        "scheme ABAB, 4 free lines": dict(scheme="ABAB"),
        "7,7,7,7 + keywords 雨, 回忆": dict(line_lengths="7,7,7,7", keywords="雨,回忆"),
        "keywords 雨, 回忆, 4 free lines": dict(lines=4, keywords="雨,回忆"),
        "every constraint": dict(line_lengths="7,7,5,7", scheme="XAXA", keywords="雨,回忆", acrostic="春夏秋冬",
                                 no_repeat_ngram=4),
    }),
    "The Time Machine": (Path("models/timemachine-lstm"), {
        "line lengths 8,6,8,6 (syllables)": dict(line_lengths="8,6,8,6"),
        "8,6,8,6 + scheme ABAB": dict(line_lengths="8,6,8,6", scheme="ABAB"),
        "scheme AABB, 4 free lines": dict(scheme="AABB"),
        "8,6,8,6 + keywords time, machine": dict(line_lengths="8,6,8,6", keywords="time,machine"),
        "every constraint": dict(line_lengths="8,6,8,6", scheme="ABAB", keywords="time,machine", no_repeat_ngram=4),
    }),
}
REWRITE = "7,7,5,7 + scheme AABB", "8,6,8,6 + scheme ABAB"  # the lyrics rewritten around lines 1 and 3


def written(model: CharRNN, **form) -> list[str]:
    """SEEDS lyrics from a line start, decoded as one batch (each writes what it would alone)."""
    options = [Options(TEMPERATURE, seed=seed, **form) for seed in range(SEEDS)]
    batch = Batch(model, [""] * SEEDS, LENGTH, options)
    for _ in batch:
        pass
    return [c.text for c in batch.candidates()]


def naturalness(model: CharRNN, texts: list[str]) -> float:
    """The model's mean log-probability per character over texts."""
    scores = [model.score(text, details=False) for text in texts]
    return -sum(s.nll for s in scores) / sum(s.count for s in scores)


def naive(model: CharRNN, free: str, form: dict, lines_count: int, seed: int) -> str:
    """Free text forced into the form (see the module's docstring)."""
    english = model.rhymes.scheme.language == "en"
    pattern = song.line_lengths(form.get("line_lengths")) or [8 if english else 7] * lines_count
    keywords = song.keywords(form.get("keywords"))
    lines = []
    if english:
        words = checks.words(free)
        for target in pattern:
            line = []
            while words and checks.syllables(" ".join(line)) < target:
                line.append(words.pop(0))
            lines.append(" ".join(line))
    else:
        chars = [c for c in free if checks.sung(c)]
        for target in pattern:
            lines.append("".join(chars[:target]))
            chars = chars[target:]
    for k, keyword in enumerate(keywords):
        lines[k] = keyword + (" " if english else "") + lines[k]
    for k, head in enumerate(form.get("acrostic") or ""):
        lines[k] = head + lines[k][1:]
    letters, keys, pick = scheme_letters(form), {}, random.Random(seed)
    for k, line in enumerate(lines):
        letter = letters[k % len(letters)] if letters else "X"
        if letter == "X" or not line:
            continue
        key = keys.setdefault(letter, model.rhymes.scheme.key(line))
        if key is None or model.rhymes.scheme.key(line) == key:
            continue
        endings = model.rhymes.scheme.endings(key, set(model.vocab.chars))
        last = checks.words(line)[-1] if english else line[-1]
        lines[k] = line[:len(line) - len(last)] + pick.choice(endings)
    return "\n".join(lines) + "\n"


def scheme_letters(form: dict) -> str:
    parsed = song.scheme(form.get("scheme"))
    return parsed.letters if parsed else ""


def shares(texts: list[str], form: dict, english: bool) -> list:
    """Of the lines (or lyrics), the shares that keep each rule the form asks for ("" where it asks none)."""
    pattern = song.line_lengths(form.get("line_lengths"))
    lines = [line for text in texts for line in checks.lines_of(text)]
    exact = "" if not pattern else sum(
        checks.length(line, english) == pattern[k % len(pattern)]
        for text in texts for k, line in enumerate(checks.lines_of(text))) / len(lines)
    letters = scheme_letters(form)
    rhymed = "" if not letters else 1 - sum(len(checks.broken_rhymes(text, letters)) for text in texts) / sum(
        sum(c != "X" for c in (letters * 4)[:len(checks.lines_of(text))]) for text in texts)
    keywords = song.keywords(form.get("keywords"))
    held = "" if not keywords else sum(checks.times_held(text, k, english) >= 1 for text in texts
                                      for k in keywords) / (len(keywords) * len(texts))
    return [exact, rhymed, held]


def main() -> None:
    rows, cost_rows, rewrite_rows, models = [], [], [], {}
    for corpus, (folder, settings) in CORPORA.items():
        model = models[corpus] = CharRNN.from_pretrained(folder)
        english = model.rhymes.scheme.language == "en"
        free = written(model, lines=None)  # for the naive method: text with no form at all
        for name, form in settings.items():
            texts = written(model, **form)
            lines = len(checks.lines_of(texts[0]))
            plain = naturalness(model, written(model, lines=lines))
            ours = naturalness(model, texts)
            forced = naturalness(model, [naive(model, f, form, lines, seed) for seed, f in enumerate(free)])
            rows.append([corpus, name, *shares(texts, form, english)])
            cost_rows.append([corpus, name, ours, plain, ours - plain, forced, ours - forced])
            if name in REWRITE:
                rewrite_rows.append([corpus, *rewritten(model, texts, form, english)])
    table(f"Form kept, {SEEDS} seeded lyrics a setting, temperature {TEMPERATURE} (independent checks: pypinyin, "
          "pronouncing)", ["corpus", "setting", "lines of the asked length (target 1.0)",
                           "lines keeping the scheme (target >= 0.95)", "keywords present (target 1.0)"], rows)
    table("Kept lines: lyrics above rewritten around lines 1 and 3 (8 candidates a run)",
          ["corpus", "rewrites", "kept lines unchanged (target 1.0)", "lines of the asked length",
           "lines keeping the scheme"], rewrite_rows)
    table("Naturalness: the model's mean log-probability per character (higher is more natural)",
          ["corpus", "setting", "constrained", "unconstrained, as many lines", "cost (nats/char)",
           "naive: the form by force", "constrained - naive (> 0: more natural)"], cost_rows)
    speed(models)


def rewritten(model: CharRNN, lyrics: list[str], form: dict, english: bool) -> list:
    kept = changed = 0
    texts = []
    for seed, lyric in enumerate(lyrics):
        old = lyric.rstrip("\n")
        new = model.rewrite(old, "1,3", TEMPERATURE, seed=seed, **form)
        old_lines, new_lines = old.split("\n"), new.split("\n")
        kept += sum(new_lines[k] == old_lines[k] for k in (0, 2))
        changed += new != old
        texts.append(new + "\n")
    exact, rhymed, _ = shares(texts, form, english)
    return [f"{len(lyrics)} ({changed} changed)", kept / (2 * len(lyrics)), exact, rhymed]


def speed(models: dict) -> None:
    """Characters per second of one stream with every constraint on against plain sampling, the setups taking turns."""
    rows = []
    for corpus, model in models.items():
        every = CORPORA[corpus][1]["every constraint"]
        setups = {
            "plain sampling": lambda r, m=model: sum(len(m.generate("", 120, TEMPERATURE, seed=s)) for s in range(10)),
            "every constraint": lambda r, m=model, e=every: sum(len(m.generate("", LENGTH, TEMPERATURE, seed=s, **e))
                                                                for s in range(10)),
        }
        rates = best_rates(setups, TIMING_ROUNDS)
        rows += [[corpus, name, rate, rate / rates["plain sampling"]] for name, rate in rates.items()]
    table(f"Decoding one stream at a time, best of {TIMING_ROUNDS} alternating rounds",
          ["corpus", "options", "characters/s", "vs plain"], rows)


if __name__ == "__main__":
    main()
