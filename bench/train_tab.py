"""Training in the Train tab against `python -m training`: `python -m bench.train_tab` (about 15 minutes).

On a lyrics text no model saw (the last 20,000 characters of the Jay Chou corpus; the base LSTM is trained here on
the rest, with `make models`' settings for it):
- seconds from Start to the first point of the curve, through the engine the tab uses (engine.training);
- characters per second of training steps in the tab (its process: lower priority, its threads) against
  `python -m training` with the same settings on the same text, taking turns twice, each keeping its best;
- held-out perplexity after the tab's default budget: from scratch (small, the tab's default, and medium, the base
  model's size), fine-tuned from the base LSTM, and the text's own bigram.
"""
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from bench.common import JAYCHOU, table
from engine.training import Trained
from training.train import TrainConfig, train
from ui.train import config_for, default_minutes

TEXT_CHARS = 20_000
BASE_MINUTES = 1.6  # TRAIN_FLAGS in the Makefile
SPEED_MINUTES = 1.0
ROUNDS = 2


def tab_run(trained: Trained, text: str, config: TrainConfig) -> tuple[dict, float]:
    """A training through the engine as the tab starts it: its metrics, and seconds from Start to the first point."""
    started, first = time.perf_counter(), None
    for event in trained.start("bench", config, "bench", text).events():
        if event["event"] == "point" and first is None:
            first = time.perf_counter() - started
        if event["event"] == "failed":
            raise RuntimeError(event["message"])
        if event["event"] == "done":
            return json.loads((Path(event["folder"]) / "metrics.json").read_text()), first
    raise RuntimeError("the training ended without a model")


def cli_run(text_file: Path, out: Path, config: TrainConfig) -> dict:
    """`python -m training` with config's settings."""
    flags = []
    for name in ("cell", "embed_size", "hidden_size", "max_minutes", "eval_seconds", "val_fraction", "lr",
                 "batch_size", "num_steps", "dropout", "seed", "epochs", "patience"):
        flags += ["--" + name.replace("_", "-"), str(getattr(config, name))]
    subprocess.run([sys.executable, "-m", "training", "--corpus", str(text_file), "--out", str(out), "--checkpoint",
                    f"{out}.pt", "--no-progress", *flags], check=True)
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    corpus = JAYCHOU.read_text(encoding="utf-8")
    text, rest = corpus[-TEXT_CHARS:], corpus[:-TEXT_CHARS]
    work = Path(tempfile.mkdtemp(prefix="bench-train-tab-"))
    (work / "rest.txt").write_text(rest, encoding="utf-8")
    (work / "text.txt").write_text(text, encoding="utf-8")
    base = work / "base-lstm"
    print(f"training the base LSTM on the corpus but its last {TEXT_CHARS:,} characters ({BASE_MINUTES} min)...")
    train(TrainConfig(corpus=str(work / "rest.txt"), out=str(base), cell="lstm", lexicon="zh",
                      max_minutes=BASE_MINUTES, checkpoint=str(work / "base.pt"), progress=False))
    trained = Trained(work / "trained", slots=1)
    minutes = default_minutes(trained)

    def tab(start=None, size="small", budget=minutes):
        start_variant = None if start is None else SimpleNamespace(source=str(start))  # as a Variant names it
        return config_for(text, start_variant, "lstm", size, budget, TrainConfig.lr, TrainConfig.batch_size,
                          TrainConfig.num_steps, TrainConfig.dropout, TrainConfig.seed)

    speeds = {"tab": [], "python -m training": []}
    firsts = []
    for k in range(ROUNDS):
        metrics, first = tab_run(trained, text, tab(budget=SPEED_MINUTES))
        speeds["tab"].append(metrics["chars_per_second"])
        firsts.append(first)
        metrics = cli_run(work / "text.txt", work / f"cli-{k}", tab(budget=SPEED_MINUTES))
        speeds["python -m training"].append(metrics["chars_per_second"])
    cli_best = max(speeds["python -m training"])
    table("Training speed on the same 20,000 characters (small LSTM, characters/s of training steps, best of "
          f"{ROUNDS})", ["setup", "chars/s", "vs python -m training"],
          [[name, max(rates), max(rates) / cli_best] for name, rates in speeds.items()])
    print(f"seconds from Start to the first point: {', '.join(f'{f:.1f}' for f in firsts)}\n")

    rows = []
    for label, config in [("from scratch, small (the tab's default)", tab()),
                          ("from scratch, medium (the base model's size)", tab(size="medium")),
                          ("fine-tuned from the base LSTM", tab(start=base))]:
        metrics, _ = tab_run(trained, text, config)
        rows.append([label, metrics["params"], metrics["val_ppl"], metrics["bigram_ppl"],
                     metrics["val_ppl"] / metrics["bigram_ppl"], metrics["epochs"]])
    rows.append(["the text's bigram", "", rows[0][3], rows[0][3], 1.0, ""])
    table(f"Held-out perplexity after {minutes:g} minutes in the tab, on {TEXT_CHARS:,} lyrics characters no model "
          "saw (a tenth held out)", ["start", "parameters", "held-out ppl", "bigram ppl", "vs bigram", "epochs"], rows)
    scratch = min(r[2] for r in rows[:2])
    print(f"fine-tuned vs the better scratch run: {rows[2][2] / scratch:.2f}x")
    print(f"(base model and runs in {work})")


if __name__ == "__main__":
    main()
