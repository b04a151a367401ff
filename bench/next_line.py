"""The next-line model fused, on the held-out line pairs: what each part of the shipped fusion gives; and how the
encoder hands its context to the decoder: the three modes, each trained with
the shipped next-line model's settings and time budget, alone and fused with the character LSTM (the fusion's shares
chosen on the held-out pairs, and on the other half of them), against the character LSTM primed with the previous
line. Fair perplexity per character of the next line, its line break counted.

python -m bench.next_line   (needs `make models`; trains the three modes one after another, about 10 minutes; writes
the table into models/jaychou-next-line/metrics.json for its card)
"""
import json
import tempfile
from pathlib import Path

import numpy as np

from charrnn import NextLine
from charrnn.next_line import CONTEXTS
from training.data import read_corpus, split
from training.mixture import best_shares
from training.next_line import line_pairs, part_probs, scored_perplexity
from training.train import DATA_DIR, TrainConfig, train

from .common import table

SHIPPED = Path("models/jaychou-next-line")


def parts(metrics: dict) -> None:
    """What each part of the shipped fusion gives: the primed LSTM alone, with the encoder-decoder, with the cache, and
    all three, each fitted as training fits the whole (its shares on best_shares' grid, the shipped sharpness)."""
    model = NextLine.from_pretrained(SHIPPED)
    language_model, shipped = model.fusion.language_model, (*model.shares, model.cache_sharpness)
    pairs = line_pairs(split(read_corpus(DATA_DIR / metrics["corpus"]), metrics["val_fraction"])[1])

    alone, decoder, cache = (np.concatenate(part_probs(model, language_model, pairs, *fusion, shipped[2]))
                             for fusion in ((1.0, 0.0), (0.0, 0.0), (0.0, 1.0)))
    (to_decoder,), (to_cache,) = best_shares(alone, decoder), best_shares(alone, cache)
    rows = []
    for name, fusion in [("the primed LSTM", (1.0, 0.0)),
                         (f"+ the encoder-decoder ({to_decoder:.0%})", (1 - to_decoder, 0.0)),
                         (f"+ the cache ({to_cache:.0%}), no encoder-decoder", (1 - to_cache, to_cache)),
                         ("all three (the shipped fusion)", shipped[:2])]:
        model.fuse(language_model, *fusion, shipped[2])
        perplexity = scored_perplexity(model, pairs)
        rows.append([name, perplexity, perplexity / metrics["primed_ppl"]])
    table(f"What each part of the fusion gives: {len(pairs):,} held-out line pairs, fair perplexity per character "
          f"(the primed LSTM: {metrics['primed_ppl']:.1f})", ["parts", "perplexity", "vs the primed LSTM"], rows)


def main() -> None:
    metrics = json.loads((SHIPPED / "metrics.json").read_text(encoding="utf-8"))
    parts(metrics)
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in CONTEXTS:
            out = Path(tmp) / mode
            found[mode] = train(TrainConfig(**{**metrics["train_config"], "context": mode, "out": str(out),
                                               "checkpoint": str(out) + ".pt", "resume": False, "progress": False}))
    rows = [{"context": mode, "params": m["params"], "alone": m["network_val_ppl"], "fused": m["val_ppl"],
             "cross_fitted": m.get("cross_fitted_ppl")} for mode, m in found.items()]
    primed = metrics.get("primed_ppl")
    table(f"The next line given the line before: {metrics['val_pairs']:,} held-out line pairs, fair perplexity per "
          f"character (the character LSTM primed with the line: {primed:.1f}; the bigram: {metrics['bigram_ppl']:.1f})",
          ["context", "params", "alone", "fused", "fused, shares from the other half", "fused vs primed LSTM"],
          [[r["context"], f"{r['params']:,}", r["alone"], r["fused"], r["cross_fitted"], r["fused"] / primed]
           for r in rows])
    metrics["context_modes"] = rows
    (SHIPPED / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
