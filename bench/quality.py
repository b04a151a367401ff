"""Held-out quality of every trained variant beside the count baselines on the same split.

python -m bench.quality [models]   (reads the metrics.json that training wrote into each model folder)
"""
import json
import sys
from pathlib import Path

from .common import table


def main(folder: str = "models") -> None:
    found = sorted(Path(folder).glob("*/metrics.json"))
    if not found:
        sys.exit(f"no trained models under {folder}/: run `make models` first")
    rows, baselines = [], {}
    for path in found:
        m = json.loads(path.read_text(encoding="utf-8"))
        cfg = m["train_config"]
        known = baselines.setdefault(m["corpus"], {})
        known.update({k: m[k] for k in ("unigram_ppl", "bigram_ppl", "bigram_lexicon_ppl") if k in m})
        network = m.get("network_val_ppl", m["val_ppl"])  # folders made before the mixture: the network alone
        counted = m.get("bigram_lexicon_ppl")
        rows.append([path.parent.name, cfg["cell"] if cfg.get("task", "chars") == "chars" else "next-line", f"{m['params']:,}",
                     f"{m['best_epoch']}/{m['epochs']}", m["train_seconds"], m["train_ppl"], network,
                     f"{m.get('count_weight', 0):.0%}", f"{m.get('lexicon_weight', 0):.0%}", m["val_ppl"],
                     m["val_ppl"] / m["bigram_ppl"], m["val_ppl"] / counted if counted else "",
                     m["val_ppl"] / m["unigram_ppl"]])
    for corpus, b in baselines.items():
        unigram, bigram = b["unigram_ppl"], b["bigram_ppl"]
        rows.append([f"unigram baseline ({corpus})", *[""] * 8, unigram, unigram / bigram, "", 1.0])
        rows.append([f"bigram baseline ({corpus})", *[""] * 8, bigram, 1.0, "", bigram / unigram])
        if "bigram_lexicon_ppl" in b:
            counted = b["bigram_lexicon_ppl"]
            rows.append([f"bigram + lexicon baseline ({corpus})", *[""] * 8, counted, counted / bigram, 1.0,
                         counted / unigram])
    table("Fair held-out perplexity (last 10% of each corpus; lower is better)",
          ["variant", "cell", "params", "best/epochs", "train s", "train ppl", "network alone", "bigram mixed in",
           "lexicon mixed in", "held-out ppl", "vs bigram", "vs bigram + lexicon", "vs unigram"], rows)

if __name__ == "__main__":
    main(*sys.argv[1:])
