"""The writing options, measured: rhyme, line lengths, acrostic and line counts, what the form costs in the model's
own perplexity, and what it costs in decoding time.

python -m bench.form   (needs models/jaychou-lstm: make models)
Over SEEDS seeds, LINES lines each, at the page's temperature. Perplexity is the model's own, of the text written
given the prefix, under its full distribution. Timings: one stream, the setups taking turns, each its best round.
"""
import math
import statistics
from pathlib import Path

from charrnn import CharRNN
from charrnn.decoding import Batch
from charrnn.form import Options, Sequence
from charrnn.rhyme import GROUPS, Chinese
from training.data import read_corpus

from .common import JAYCHOU, best_rates, table

MODEL = Path("models/jaychou-lstm")
SEEDS, LINES, LENGTH, TEMPERATURE = 50, 8, 400, 0.8
ACROSTIC = "春夏秋冬花好月圆"
LOOPS = dict(no_repeat_ngram=4)
EVERY_FORM = dict(acrostic=ACROSTIC, rhyme="auto", no_repeat_ngram=4)
EVERY_OPTION = dict(EVERY_FORM, repetition_penalty=1.2)
TIMING_ROUNDS, TIMING_LENGTH = 8, 400


def written(model: CharRNN, prefix: str, seed_base: int = 0, **form) -> list[Sequence]:
    """SEEDS continuations of an empty prefix decoded as one batch (each its own seed, as it would write alone)."""
    options = [Options(TEMPERATURE, seed=seed_base + i, lines=LINES, **form) for i in range(SEEDS)]
    batch = Batch(model, [""] * SEEDS, LENGTH, options, scored=True)
    for _ in batch:
        pass
    return batch.sequences


def perplexity(found: list[Sequence], chosen_only: bool = False) -> float:
    """The model's own perplexity of the text written; chosen_only leaves out the acrostic's characters
    (the writer chose those, not the model)."""
    nll, count = 0.0, 0
    for s in found:
        heads = {i for i, c in enumerate(s.chars) if i == 0 or s.chars[i - 1] == "\n"} if s.heads else set()
        kept = [lp for i, lp in enumerate(s.logprobs) if not (chosen_only and i in heads)]
        nll, count = nll - sum(kept), count + len(kept)
    return math.exp(nll / count)


def text(s: Sequence) -> str:
    return "".join(s.chars)


def lines_of(text: str) -> list[str]:
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def spread(lengths: list[int]) -> str:
    q1, median, q3 = statistics.quantiles(lengths, n=4)
    return f"{median:.0f} ({q1:.0f}-{q3:.0f})"


def main() -> None:
    model = CharRNN.from_pretrained(MODEL)
    chinese = Chinese()
    plain = written(model, "")
    runs = {"no form (8 lines)": plain, "avoid loops (no 4-gram twice)": written(model, "", **LOOPS),
            "rhyme auto": written(model, "", rhyme="auto"), "acrostic (8 characters)": written(model, "", acrostic=ACROSTIC),
            "every form option": written(model, "", **EVERY_FORM),
            "repetition penalty 1.2 (a sampling knob)": written(model, "", repetition_penalty=1.2)}
    rows = []
    for name, found in runs.items():
        lengths = [len(line) for s in found for line in lines_of(text(s))]
        chosen = perplexity(found, chosen_only=True)
        rows.append([name, spread(lengths), perplexity(found), chosen, chosen / perplexity(plain)])
    corpus_lines = [len(line) for line in read_corpus(JAYCHOU).split("\n") if line]
    rows.append(["the corpus's own lines", spread(corpus_lines), "", "", ""])
    table(f"Form and perplexity: {SEEDS} seeds x {LINES} lines, temperature {TEMPERATURE}, {MODEL.name}",
          ["setting", "line length: median (IQR)", "model's perplexity: all", "of its own choices",
           "vs no form (target <= 1.3)"], rows)

    rhymed, total = 0, 0
    for found in (runs["rhyme auto"], runs["every form option"]):
        for s in found:
            keys = [chinese.key(line) for line in lines_of(text(s))]
            target = next((k for k in keys if k), None)  # auto: the first line written sets the rhyme
            rhymed += sum(k == target for k in keys[1:])
            total += len(keys) - 1
    by_group = [written(model, "", seed_base=1000 * i, rhyme=name) for i, name in enumerate(GROUPS)]
    group_hits = sum(chinese.key(line) == name for name, found in zip(GROUPS, by_group)
                     for s in found for line in lines_of(text(s)))
    group_total = sum(len(lines_of(text(s))) for found in by_group for s in found)
    exact_lines = sum(text(s).count("\n") == LINES for found in runs.values() for s in found)
    heads = [line[:1] for found in (runs["acrostic (8 characters)"], runs["every form option"]) for s in found
             for line in lines_of(text(s))]
    rows = [["lines ending in the rhyme (auto, after the first)", f"{rhymed}/{total}", rhymed / total, ">= 0.95"],
            ["lines ending in the rhyme (each of the 13 groups)", f"{group_hits}/{group_total}",
             group_hits / group_total, ">= 0.95"],
            ["line counts exact", f"{exact_lines}/{SEEDS * len(runs)}", exact_lines / (SEEDS * len(runs)), "1.0"],
            ["acrostic lines beginning with their character", f"{sum(h == a for h, a in zip(heads, ACROSTIC * 2 * SEEDS))}/{len(heads)}",
             sum(h == a for h, a in zip(heads, ACROSTIC * 2 * SEEDS)) / len(heads), "1.0"]]
    table("Constraints kept", ["what", "count", "share", "target"], rows)

    lyric_length = round(statistics.mean(len(s.chars) for s in runs["every form option"]))
    setups = {  # one stream at a time, as the page writes
        ("a 400-character stream", "all off"): lambda r: len(model.generate("分开", TIMING_LENGTH, TEMPERATURE, seed=r)),
        ("a 400-character stream", "every option on"): lambda r: len(model.generate(
            "分开", TIMING_LENGTH, TEMPERATURE, seed=r, lines=40, **EVERY_OPTION)),
        (f"{SEEDS} lyrics of {LINES} lines", "all off"): lambda r: sum(len(model.generate(
            "", lyric_length, TEMPERATURE, seed=s)) for s in range(SEEDS)),
        (f"{SEEDS} lyrics of {LINES} lines", "every option on"): lambda r: sum(len(model.generate(
            "", LENGTH, TEMPERATURE, seed=s, lines=LINES, **EVERY_OPTION)) for s in range(SEEDS)),
    }
    rates = best_rates(setups, TIMING_ROUNDS)
    rows = [[what, name, 1e3 / rate, rates[what, "all off"] / rate] for (what, name), rate in rates.items()]
    table(f"Decoding one stream at a time, best of {TIMING_ROUNDS} alternating rounds (all off: the same number of "
          f"characters, {lyric_length} a lyric)", ["text", "options", "ms/char", "cost vs all off (target <= 1.5)"], rows)


if __name__ == "__main__":
    main()
