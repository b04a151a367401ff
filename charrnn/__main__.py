"""python -m charrnn generate|eval --model FOLDER_OR_REPO_ID ...: sample from a trained model, or score text."""
import argparse
import sys

from .evaluate import fair_perplexity
from .loading import ModelFileError
from .model import CharRNN


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m charrnn", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="continue a prefix", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gen.add_argument("--model", required=True, help="a model folder (made by python -m training) or a Hub repo id")
    gen.add_argument("--prefix", default="", help="text to continue (characters the model does not know are read as <unk>)")
    gen.add_argument("--length", type=int, default=100, help="characters to generate")
    gen.add_argument("--temperature", type=float, default=0.8, help="0 is greedy; higher is more adventurous")
    gen.add_argument("--top-k", type=int, default=None, help="sample only from the k most likely characters")
    gen.add_argument("--top-p", type=float, default=None, help="sample only from the smallest set of characters whose probability reaches p")
    gen.add_argument("--seed", type=int, default=None, help="the same seed gives the same text")
    gen.add_argument("--revision", default=None, help="Hub branch, tag or commit (repo ids only)")
    ev = commands.add_parser("eval", help="fair perplexity of a text file", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ev.add_argument("--model", required=True, help="a model folder or a Hub repo id")
    ev.add_argument("--text", required=True, help="UTF-8 text file to score")
    ev.add_argument("--revision", default=None, help="Hub branch, tag or commit (repo ids only)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        model = CharRNN.from_pretrained(args.model, revision=args.revision)
        if args.command == "generate":
            unknown = model.vocab.unknown(args.prefix)
            if unknown:
                print(f"note: not in the vocabulary, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
            print(args.prefix, end="", flush=True)
            for char in model.stream(args.prefix, args.length, args.temperature, args.top_k, args.top_p, args.seed):
                print(char, end="", flush=True)
            print()
        else:
            from training.data import read_corpus  # the same clear errors as training for a bad text file
            print(f"perplexity {fair_perplexity(model, read_corpus(args.text)):.2f}")
    except (ModelFileError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
