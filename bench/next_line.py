"""The next line given the line before, on the held-out pairs: fair per-character perplexity (each line's break
counted) of the three ways an encoder hands its context to the decoder, of the character LSTM primed with the
previous line and a line break (the same information), and of the count baselines.

python -m bench.next_line   (needs `make models`; trains all three modes with the attention model's own settings and
time budget, one after another, about 6 minutes; writes the table into models/jaychou-next-line/metrics.json for its
card)
"""
import json
import math
import tempfile
from pathlib import Path

from charrnn import CharRNN, NextLine
from charrnn.next_line import CONTEXTS
from training.data import read_corpus, split
from training.next_line import encode_pairs, line_pairs, pair_perplexity
from training.train import DATA_DIR, TrainConfig, train

from .common import table

ATTENTION = Path("models/jaychou-next-line")
LSTM = Path("models/jaychou-lstm")


def primed_perplexity(model: CharRNN, pairs: list[tuple[str, str]]) -> float:
    scores = [model.score(b + "\n", context=a + "\n", details=False) for a, b in pairs]
    return math.exp(sum(s.nll for s in scores) / sum(s.count for s in scores))


def main() -> None:
    metrics = json.loads((ATTENTION / "metrics.json").read_text(encoding="utf-8"))
    settings = metrics["train_config"]
    pairs = line_pairs(split(read_corpus(DATA_DIR / metrics["corpus"]), settings["val_fraction"])[1])
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in CONTEXTS:
            out = Path(tmp) / mode
            train(TrainConfig(**{**settings, "context": mode, "out": str(out), "checkpoint": str(out) + ".pt",
                                 "resume": False, "progress": False}))
            found[mode] = NextLine.from_pretrained(out)
    rows = [[f"next-line, context {mode}", f"{m.num_parameters():,}",
             pair_perplexity(m, encode_pairs(pairs, m.vocab))] for mode, m in found.items()]
    rows.append(["character LSTM primed with the line", f"{CharRNN.from_pretrained(LSTM).num_parameters():,}",
                 primed_perplexity(CharRNN.from_pretrained(LSTM), pairs)])
    rows += [["bigram (interpolated, tuned on the held-out text)", "", metrics["bigram_ppl"]],
             ["unigram", "", metrics["unigram_ppl"]]]
    bigram = metrics["bigram_ppl"]
    table(f"The next line given the line before: {len(pairs):,} held-out line pairs, fair perplexity per character",
          ["model", "params", "perplexity", "vs bigram"], [row + [row[2] / bigram] for row in rows])
    metrics["context_modes"] = [{"model": r[0], "params": r[1], "perplexity": r[2]} for r in rows]
    metrics["val_pairs"] = len(pairs)
    (ATTENTION / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
