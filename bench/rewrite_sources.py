"""Rewrites drawing on the next-line model: over held-out four-line stanzas with lines 1 and 3 kept, how often a
rewritten line is one the next-line model proposed, and how natural the rewrites are with and without its proposals
(the character LSTM's mean log-probability per character of lines 2 to 4 after line 1: the run before the kept
line, the kept line and the run after it), against as many candidates of the LSTM's own, and what the proposals
cost in time.

python -m bench.rewrite_sources   (needs models/jaychou-lstm and models/jaychou-next-line: make models)
"""
import time
from pathlib import Path

from charrnn import CharRNN, NextLine
from training.data import read_corpus, split
from training.train import DATA_DIR

from .common import table

STANZAS, TEMPERATURE, LOOPS = 50, 0.8, 4  # the page's defaults: temperature 0.8, no phrase of 4 twice
KEEP = [1, 3]


def stanzas(text: str, count: int) -> list[list[str]]:
    """The first count runs of four non-empty lines of text, one after another."""
    lines = [line for line in text.split("\n") if line.strip()]
    return [lines[k:k + 4] for k in range(0, 4 * count, 4)]


def naturalness(model: CharRNN, lines: list[str]) -> float:
    """Mean log-probability per character of lines 2 to 4 after line 1."""
    score = model.score("\n".join(lines[1:]) + "\n", context=lines[0] + "\n", details=False)
    return -score.nll / score.count


def main() -> None:
    model, writer = CharRNN.from_pretrained(Path("models/jaychou-lstm")), NextLine.from_pretrained(
        Path("models/jaychou-next-line"))
    held_out = split(read_corpus(DATA_DIR / "jaychou_lyrics.txt"))[1]
    proposed: set[str] = set()

    def write_line(line: str, seed: int | None) -> str:
        proposed.add(written := writer.next_line(line, TEMPERATURE, seed=seed))
        return written

    setups = {"the LSTM's candidates (8)": (8, None), "the LSTM's candidates (12)": (12, None),
              "the LSTM's (8) + the next-line model's (4)": (8, write_line)}
    found, seconds = {name: [] for name in setups}, dict.fromkeys(setups, 0.0)
    taken = rewritten = 0
    for seed, stanza in enumerate(stanzas(held_out, STANZAS)):
        lyric = "\n".join(stanza)
        for name, (candidates, next_line) in setups.items():  # alternated, stanza by stanza
            start = time.perf_counter()
            new = model.rewrite(lyric, KEEP, TEMPERATURE, seed=seed, candidates=candidates, no_repeat_ngram=LOOPS,
                                next_line=next_line)
            seconds[name] += time.perf_counter() - start
            found[name].append(naturalness(model, new.split("\n")))
            if next_line:
                lines = new.split("\n")
                taken += sum(lines[k] in proposed for k in (1, 3))
                rewritten += 2
                proposed.clear()
    plain = sum(found["the LSTM's candidates (8)"]) / STANZAS
    table(f"Rewrites of {STANZAS} held-out stanzas, lines 1 and 3 kept (temperature {TEMPERATURE}, no phrase of "
          f"{LOOPS} twice): naturalness is the LSTM's mean log-probability per character of lines 2-4 after line 1",
          ["candidates", "naturalness (nats/char)", "vs the LSTM's alone", "lines from the next-line model",
           "seconds a rewrite"],
          [[name, sum(values) / STANZAS, sum(values) / STANZAS - plain,
            f"{taken / rewritten:.0%}" if "next-line" in name else "", seconds[name] / STANZAS]
           for name, values in found.items()])


if __name__ == "__main__":
    main()
