"""charrnn (or python -m charrnn) generate|score|next-line --model FOLDER_OR_REPO_ID ...: write with a trained model, score a
text, or write the line after a line."""
import argparse
import math
import sys
from pathlib import Path

from .evaluate import Score
from .loading import ModelFileError
from .model import CharRNN
from . import limits, song
from .next_line import NextLine


def within(allowed: limits.Range, kind=float):
    """An argparse type: a number of kind in the range allowed, or a clear usage error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            kind_name = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind_name}") from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"{text} is not from {allowed}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="charrnn", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hub = argparse.ArgumentParser(add_help=False)
    hub.add_argument("--revision", default=None, help="Hub branch, tag or commit (repo ids only)")
    sampling = argparse.ArgumentParser(add_help=False)
    sampling.add_argument("--temperature", type=within(limits.TEMPERATURE), default=0.8,
                          help=f"{limits.TEMPERATURE}: 0 is greedy; higher is more adventurous")
    sampling.add_argument("--top-k", type=int, default=None, help="sample only from the k most likely characters")
    sampling.add_argument("--top-p", type=within(limits.TOP_P), default=None,
                          help=f"{limits.TOP_P}: sample only from the smallest set of characters whose probability "
                               "reaches p")
    sampling.add_argument("--seed", type=within(limits.SEED, int), default=None,
                          help=f"{limits.SEED}: the same seed gives the same text")
    commands = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_: str, *parents) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_, parents=[*parents, hub],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    gen = command("generate", "continue a prefix", sampling)
    gen.add_argument("--model", required=True, help="a model folder (made by python -m training) or a Hub repo id")
    gen.add_argument("--prefix", default="", help="text to continue (characters the model does not know are read as <unk>)")
    gen.add_argument("--length", type=within(limits.LENGTH, int), default=100, help=f"{limits.LENGTH}: characters to write")
    gen.add_argument("--lines", type=within(limits.LINES, int), default=None,
                     help=f"{limits.LINES}: stop after this many lines (--length stays the most characters)")
    gen.add_argument("--acrostic", default=None, help="one line per character, each beginning with it (藏头)")
    gen.add_argument("--rhyme", default=None, help="'auto' (the prefix's last line, else the first line written), "
                     "a rhyme group such as 江阳 (or one of its characters), or an English word")
    gen.add_argument("--repetition-penalty", type=within(limits.REPETITION_PENALTY), default=1.0,
                     help=f"{limits.REPETITION_PENALTY}: CTRL's penalty on characters already used (1 = off)")
    gen.add_argument("--no-repeat-ngram", type=within(limits.NO_REPEAT_NGRAM, int), default=0,
                     help=f"{limits.NO_REPEAT_NGRAM}: no sequence of this many characters twice (0 = off)")
    gen.add_argument("--line-lengths", default=None,
                     help="a melody's pattern, e.g. 7,7,5,7: each line's sung characters (Chinese; punctuation and "
                          "spaces do not count) or syllables (English), repeated over --lines (one verse without)")
    gen.add_argument("--scheme", default=None,
                     help="a rhyme scheme, e.g. AABB, ABAB or XAXA (X: free); a letter's rhyme is its first line's, "
                          "or given: 'AABB A=江阳' (English: 'ABAB A=time')")
    gen.add_argument("--keywords", default=None,
                     help=f"up to {limits.KEYWORDS} words the lyric holds, each once, e.g. '雨,回忆'")
    gen.add_argument("--keywords-in-order", action="store_true", help="the keywords in the order given")
    gen.add_argument("--keep", default=None, metavar="FILE",
                     help=f"a UTF-8 lyric whose lines to keep begin with '{song.KEPT_MARK}': the other lines are "
                          "written anew around them (--prefix, --length and --lines are not used)")
    gen.add_argument("--candidates", type=within(limits.CANDIDATES, int), default=1,
                     help=f"{limits.CANDIDATES}: write this many together, print them best first (with --keep: this "
                          "many rewrites)")
    sc = command("score", "fair perplexity of a text file, and where the model was most surprised")
    sc.add_argument("--model", required=True, help="a model folder or a Hub repo id")
    sc.add_argument("--text", required=True, help="UTF-8 text file to score")
    sc.add_argument("--context", default="", help="text before it: primes the model, not scored (default: a line start)")
    sc.add_argument("--top", type=int, default=10, help="how many of the most surprising characters to list")
    nl = command("next-line", "write the line that follows a line (a next-line model)", sampling)
    nl.add_argument("--model", required=True, help="a next-line model folder or Hub repo id")
    nl.add_argument("--line", required=True, help="the line to answer (of several, the last non-empty one)")
    nl.add_argument("--max-length", type=within(limits.Range(1, limits.NEXT_LINE_LENGTH), int),
                    default=limits.NEXT_LINE_LENGTH, help="the most characters the line may have")
    nl.add_argument("--attention", action="store_true", help="then, per written character, where the model looked")
    return p


def next_line(args) -> None:
    model = NextLine.from_pretrained(args.model, revision=args.revision)
    steps = model.written(args.line, args.temperature, args.top_k, args.top_p, args.seed, args.max_length)
    steps = list(steps) if args.attention else steps
    for char, _ in steps:
        print(char, end="", flush=True)
    print()
    if args.attention:
        source = model.source(args.line) or "\n"
        for char, weights in steps:
            looked = sorted(range(len(weights)), key=lambda j: -weights[j])[:3] if weights else []
            print(f"{char}: " + ", ".join(f"{source[j]!r} {weights[j]:.0%}" for j in looked))


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no file {path}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None


def report(score: Score, top: int, vocab) -> None:
    print(f"perplexity {score.perplexity:.2f} over {score.count:,} characters "
          f"({score.nll / score.count / math.log(2):.2f} bits each)")
    if top > 0:
        print(f"\nthe {min(top, score.count)} most surprising characters:")
    for k in score.most_surprising(top):
        c = score.chars[k]
        expected = ", ".join(f"{a!r} {p:.1%}" for a, p in c.alternatives)
        known = "" if c.char in vocab else " (not in the vocabulary: <unk>)"
        line, column = score.line_column(k)
        print(f"  line {line}, column {column}: {c.char!r}{known} p={c.prob:.2g}, rank {c.rank:,}; expected {expected}")


def generate(model: CharRNN, args) -> None:
    unknown = model.vocab.unknown(args.prefix)
    if unknown:
        print(f"note: not in the vocabulary, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    form = dict(acrostic=args.acrostic, rhyme=args.rhyme, repetition_penalty=args.repetition_penalty,
                no_repeat_ngram=args.no_repeat_ngram, line_lengths=args.line_lengths, scheme=args.scheme,
                keywords=args.keywords, keywords_in_order=args.keywords_in_order)
    if args.keep:
        rewrite(model, args, form)
        return
    options = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                   lines=args.lines or None, **form)
    if args.candidates > 1:
        for rank, c in enumerate(model.candidates(args.prefix, args.candidates, args.length, **options), 1):
            print(f"#{rank}  mean log-probability {c.mean_logprob:.3f}  perplexity {c.perplexity:.1f}")
            print(args.prefix + c.text, end="\n\n")
        return
    chars = model.stream(args.prefix, args.length, **options)  # bad options fail here, before any output
    print(args.prefix, end="", flush=True)
    for char in chars:
        print(char, end="", flush=True)
    print()


def rewrite(model: CharRNN, args, form: dict) -> None:
    """The lyric of --keep with its marked lines kept and the others written anew: printed with the kept lines
    marked again, so the output can be edited and given back."""
    lyric, kept = song.marked(read_text(args.keep).rstrip("\n"))
    keep = [k + 1 for k in sorted(kept)]
    for n in range(args.candidates):
        seed = None if args.seed is None else args.seed + n
        new = model.rewrite(lyric, keep, args.temperature, args.top_k, args.top_p, seed, **form)
        if args.candidates > 1:
            print(f"#{n + 1}")
        print("\n".join(f"{song.KEPT_MARK} {line}" if k in kept else line for k, line in enumerate(new.split("\n"))),
              end="\n\n" if args.candidates > 1 else "\n")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "next-line":
            next_line(args)
            return 0
        model = CharRNN.from_pretrained(args.model, revision=args.revision)
        if args.command == "generate":
            generate(model, args)
        else:
            report(model.score(read_text(args.text), args.context), args.top, model.vocab)
    except (ModelFileError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
