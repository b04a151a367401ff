"""The training curve: training and held-out perplexity per epoch beside the count baselines, as a PNG."""
from pathlib import Path

from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no display needed
from matplotlib.ticker import MaxNLocator, ScalarFormatter

CURVE_NAME = "training_curve.png"


def write_curve(metrics: dict, path: Path) -> Path:
    epochs = [h["epoch"] for h in metrics["history"]]
    fig = Figure(figsize=(6.4, 4), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    trained = [h for h in metrics["history"] if h["train_ppl"] is not None]  # a fine-tuned run's start has none
    ax.plot([h["epoch"] for h in trained], [h["train_ppl"] for h in trained], "o-", label="training batches (dropout on)")
    ax.plot(epochs, [h["val_ppl"] for h in metrics["history"]], "o-", label="held-out text")
    ax.axhline(metrics["unigram_ppl"], color="gray", linestyle=":", label="unigram baseline (held-out)")
    ax.axhline(metrics["bigram_ppl"], color="gray", linestyle="--", label="bigram baseline (held-out)")
    ax.axvline(metrics["best_epoch"], color="green", alpha=0.3, label=f"kept: epoch {metrics['best_epoch']}")
    ax.set(yscale="log", xlabel="epoch", ylabel="perplexity (log scale)", title=f"Training on {metrics['corpus']}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.legend(fontsize="small")
    fig.savefig(path)
    return path
