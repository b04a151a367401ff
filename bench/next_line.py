"""How the encoder hands its context to the decoder, on the held-out line pairs: the three modes, each trained with
the shipped next-line model's settings and time budget, alone and fused with the character LSTM (the fusion's shares
chosen on the held-out pairs, and on the other half of them), against the character LSTM primed with the previous
line. Fair perplexity per character of the next line, its line break counted.

python -m bench.next_line   (needs `make models`; trains the three modes one after another, about 9 minutes; writes
the table into models/jaychou-next-line/metrics.json for its card)
"""
import json
import tempfile
from pathlib import Path

from charrnn.next_line import CONTEXTS
from training.train import TrainConfig, train

from .common import table

SHIPPED = Path("models/jaychou-next-line")


def main() -> None:
    metrics = json.loads((SHIPPED / "metrics.json").read_text(encoding="utf-8"))
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
