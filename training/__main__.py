"""python -m training --corpus FILE --cell lstm --out models/NAME: train one variant, export it Hub-ready."""
import argparse
import dataclasses
import sys

from charrnn import CELLS
from charrnn.next_line import CONTEXTS

from .data import SAMPLERS, CorpusError
from .train import TrainConfig, train

HELP = {
    "corpus": "UTF-8 text file to learn from",
    "out": "folder for the trained model (model.safetensors, config.json, metrics.json, README.md)",
    "task": "chars: a character model (CharRNN); next-line: an encoder-decoder writing the line after a line",
    "context": "next-line only: how the encoder's context reaches the decoder (init, every-step, attention)",
    "cell": "recurrent cell (chars only; next-line uses GRUs)",
    "embed_size": "size of the character embedding",
    "hidden_size": "size of the recurrent state",
    "num_layers": "stacked recurrent layers",
    "dropout": "dropout on embedding, between layers and before the output layer",
    "embed_dropout": "share of characters whose embedding is zeroed in a batch",
    "weight_drop": "DropConnect on the hidden-to-hidden weights",
    "one_hot": "one-hot input instead of an embedding (the classic tutorial setup)",
    "head_size": "bottleneck before the output layer (0: none); smaller decodes faster and overfits less",
    "min_count": "characters seen fewer times in the training text become <unk>",
    "unk_dropout": "a: each training character becomes <unk> with chance a / (a + its count)",
    "newlines": "keep line breaks, or turn them into spaces",
    "val_fraction": "share of the text, taken from its end, held out for validation",
    "sampler": "random: independent subsequences; sequential: streams read in order, state carried",
    "batch_size": "subsequences per batch",
    "num_steps": "characters per subsequence (truncated backpropagation length)",
    "bf16": "train in bfloat16 autocast (matrix products in bf16, the weights and their updates in fp32): faster on a "
            "CPU with AVX512-BF16 (bench/training_speed.py)",
    "optimizer": "adam (AdamW) or sgd",
    "lr": "learning rate",
    "weight_decay": "decoupled weight decay",
    "label_smoothing": "share of each target's probability spread over the training unigram distribution",
    "clip": "largest global gradient norm (all parameters together)",
    "ema": "decay of the exponential moving average of weights that is evaluated and exported",
    "mix_counts": "character models: mix the network with the bigram of the training text, at the share that "
                  "scores the held-out text best (saved with the model, used by decoding and scoring alike)",
    "lexicon": "character models: a language code (zh, en, ...): mix in its words as a count model too, which "
               "character follows which inside words of wordfreq's frequency list, at the share that scores the "
               "held-out text best",
    "teacher": "character models: a trained model folder (same corpus and vocabulary) whose network's distribution "
               "this one learns from as well (knowledge distillation)",
    "distill": "with --teacher: the teacher's share of the loss (the rest is the smoothed cross-entropy)",
    "fuse_with": "next-line models: a trained character model folder (same corpus and vocabulary) to fuse with: "
                 "primed with the line, and its states a cache over the line, at the shares and sharpness that score "
                 "the held-out pairs best (saved with the model)",
    "epochs": "most passes over the training text",
    "patience": "stop after this many measurements (epochs; with --eval-seconds, points) without a better held-out "
                "perplexity",
    "max_minutes": "stop once this many minutes have passed (the best weights measured are kept)",
    "eval_seconds": "also measure (held-out perplexity, best weights kept) within an epoch once this many seconds "
                    "have passed since the last measurement; 0: at the end of each epoch only",
    "init_from": "a trained character model (folder or Hub repo) to continue training on this text: its network "
                 "and vocabulary, grown by the text's new characters; the count models are counted anew",
    "seed": "random seed: the same seed on the CPU gives the same model",
    "device": "auto (CUDA when present), cpu or cuda",
    "checkpoint": "checkpoint file (default: checkpoints/<out folder name>.pt)",
    "resume": "continue from the checkpoint of a stopped run",
    "progress": "show progress bars and per-epoch lines",
    "sample_prefixes": "prefixes to sample from while training (those the vocabulary knows)",
    "sample_length": "characters per sample",
}
CHOICES = {"task": ("chars", "next-line"), "context": CONTEXTS, "cell": CELLS, "sampler": tuple(SAMPLERS), "optimizer": ("adam", "sgd"), "newlines": ("keep", "space"),
           "device": ("auto", "cpu", "cuda")}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=HELP[f.name])
        elif isinstance(default, list):
            p.add_argument(flag, nargs="+", default=default, help=HELP[f.name])
        else:
            kind = float if f.name in ("max_minutes", "eval_seconds") else type(default) if default is not None else str
            p.add_argument(flag, type=kind, default=default, choices=CHOICES.get(f.name), help=HELP[f.name])
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        train(TrainConfig(**vars(args)))
    except (CorpusError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopped; continue with the same command and --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
