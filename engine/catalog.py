"""The models the app offers, each with a readable name, and the one way every tab and endpoint writes with them.

A character model writes through its decoding loop in the decoding processes (engine.loop, engine.workers) or,
per request (ZeroGPU lends the GPU per call), decoded for that request alone: `Variant.stream` and
`Variant.candidates` are the same either way.
"""
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import spaces

from charrnn import Candidate, CharRNN, ModelFileError, NextLine, Options
from charrnn.counts import BIGRAM_NAME, Bigram
from charrnn.loading import fetch, is_next_line
from charrnn.names import METRICS_NAME, base_name

from .loop import Busy, Request
from .settings import Settings
from .workers import RemoteLoop, processes_for, shared_decoders

log = logging.getLogger("charrnn.app")
ALONE: dict[str, CharRNN] = {}  # source -> model, for the per-request functions (ZeroGPU passes plain arguments)


@dataclass
class Variant:
    source: str
    model: CharRNN | NextLine
    metrics: dict
    bigram: Bigram | None = None  # the baseline counted on the model's training text, where its folder ships one
    loop: RemoteLoop | None = None  # the model's decoding loop, when writing is served by one

    def __post_init__(self):
        ALONE[self.source] = self.model

    def stream(self, prefix: str, length: int, options: dict, details: bool = False,
               every: Callable[[], float] | None = None, scored: bool = False) -> "Request | Writing":
        """The continuation, iterated in lists of pieces (characters, or Steps with details), then, scored, its
        candidate() (the text and its log-probability under the model); every: see engine.loop.Request. Bad options
        raise ValueError, a full loop Busy, before the first piece; cancel() (or leaving the iteration) stops it."""
        if self.loop is not None:
            [request] = self.loop.submit([prefix], length, [Options(**options)], details, every)
            return request
        return Writing(alone(self.source, prefix, length, options, details, scored))

    def next_line(self, line: str, temperature: float, seed: int | None, top_k: int | None = None,
                  top_p: float | None = None) -> Iterator[tuple[str, list[float] | None]]:
        """A next-line model's line after line: each character written, with where it looked in line (its
        attention weights, or None), decoded for the request alone (on ZeroGPU, in a GPU worker)."""
        return line_alone(self.source, line, temperature, seed, top_k, top_p)

    def candidates(self, prefix: str, n: int, length: int, options: dict) -> list[Candidate]:
        """n continuations written together, row i seeded with seed + i, best first."""
        if self.loop is not None:
            return self.loop.candidates(prefix, n, length, **options)
        return ranked(self.source, prefix, n, length, options)

    def rewrite(self, lyric: str, keep, options: dict, next_line: "Variant | None" = None) -> str:
        """CharRNN.rewrite, its candidates written as this variant writes them (its loop, or per request), with
        next_line's lines among them where given; the kept lines' likelihood is scored here, as the Score tab
        scores."""
        def propose(prefix: str, n: int, length: int, **run) -> list[Candidate]:
            return self.candidates(prefix, n, length, run)

        def write_line(line: str, seed: int | None) -> str:  # as CharRNN.rewrite writes a NextLine's, on ZeroGPU too
            steps = next_line.next_line(line, options["temperature"], seed, options.get("top_k"), options.get("top_p"))
            return "".join(char for char, _ in steps)

        return self.model.rewrite(lyric, keep, propose=propose, next_line=write_line if next_line else None,
                                  **options)

    def partner(self, next_lines: dict[str, "Variant"]) -> "Variant | None":
        """The first next-line model of this model's vocabulary (trained on the same text), or None."""
        return next((v for v in next_lines.values() if v.model.vocab == self.model.vocab), None)


class Writing:
    """A continuation decoded for its request alone, as a loop's Request reads: lists of pieces, then candidate()."""

    def __init__(self, items: Iterator):
        self.items, self.result, self.cancelled = items, None, False

    def __iter__(self) -> Iterator[list]:
        try:
            for item in self.items:
                if self.cancelled:
                    return
                if item is None or isinstance(item, Candidate):  # the last: its candidate, where scored
                    self.result = item
                else:
                    yield item
        finally:
            self.items.close()

    def cancel(self) -> None:
        """Stop after the piece being decoded (from another thread too)."""
        self.cancelled = True

    def candidate(self) -> Candidate | None:
        return self.result


@spaces.GPU
def alone(source: str, prefix: str, length: int, options: dict, details: bool, scored: bool) -> Iterator:
    """A continuation decoded for this request alone (on ZeroGPU, in a GPU worker: plain values in and out): lists
    of one piece, then its Candidate (scored) or None."""
    pieces = ALONE[source].stream(prefix, length, details=details, scored=scored, **options)
    while True:
        try:
            yield [next(pieces)]
        except StopIteration as end:
            yield end.value
            return


@spaces.GPU
def line_alone(source: str, line: str, temperature: float, seed: int | None, top_k: int | None,
               top_p: float | None) -> Iterator:
    yield from ALONE[source].written(line, temperature, top_k, top_p, seed)


def side_by_side(variants: dict[str, "Variant"], prefix: str, length: int, options: dict,
                 every: float) -> Iterator[dict[str, tuple[str, Candidate | None, Exception | None]]]:
    """Every variant writing prefix with the same options together, each through its own way of writing: every
    `every` seconds, and once all have ended, per name, (its text so far, its candidate once done, the error that
    stopped it or None). Leaving the iteration cancels them all."""
    texts, ends, errors, writings = {name: [] for name in variants}, {}, {}, {}
    for name, variant in variants.items():
        try:
            writings[name] = variant.stream(prefix, length, options, scored=True)
        except (ValueError, Busy) as e:  # this model cannot take these options (no line breaks, say), or is full
            errors[name] = e

    def read(name: str, writing) -> None:
        try:
            for pieces in writing:
                texts[name] += pieces
            ends[name] = writing.candidate()
        except Exception as e:  # Busy, DecoderGone: said in that model's place
            errors[name] = e

    readers = [threading.Thread(target=read, args=item, name="side by side", daemon=True) for item in writings.items()]
    for reader in readers:
        reader.start()
    def now() -> dict:
        return {name: ("".join(texts[name]), ends.get(name), errors.get(name)) for name in variants}

    try:
        while any(reader.is_alive() for reader in readers):
            yield now()
            time.sleep(every)
        yield now()
    finally:
        for writing in writings.values():
            writing.cancel()


@spaces.GPU
def ranked(source: str, prefix: str, n: int, length: int, options: dict) -> list[Candidate]:
    return ALONE[source].candidates(prefix, n, length, **options)


def display_name(source: str, sources: list[str]) -> str:
    """The readable name of source, with the source itself added where another in the list shares the name."""
    name = base_name(source)
    if sum(base_name(s) == name for s in sources) > 1:
        return f"{name} ({source.rstrip('/')})"
    return name


def read_metrics(source: str) -> dict:
    """metrics.json beside the weights; optional (the page then shows less about the model)."""
    try:
        with open(fetch(source, METRICS_NAME), encoding="utf-8") as f:
            metrics = json.load(f)
    except (ModelFileError, OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}  # an uploaded zip's may be anything


def read_bigram(source: str) -> Bigram | None:
    """The bigram beside the weights; optional (folders made before it was shipped have none)."""
    try:
        return Bigram.load(fetch(source, BIGRAM_NAME))
    except (ValueError, OSError) as e:
        log.info("no bigram baseline for %s: %s", source, e)
        return None


def load_models(sources: list[str], settings: Settings, names_from: list[str] | None = None
                ) -> tuple[dict[str, Variant], dict[str, Variant]]:
    """Every source that loads, by display name (told apart among names_from, by default the sources): the character
    models, and the next-line models (as their configs say). One that does not load is skipped with a warning.
    Each character model writes as settings.decoding says: through a decoding loop in one of the decoding
    processes, or per request."""
    device, processes = settings.device, settings.decoders or processes_for(settings.device)
    char_models, next_lines = {}, {}
    for source in sources:
        try:
            model_class = NextLine if is_next_line(source) else CharRNN
            model = model_class.from_pretrained(source).to(device)
            warm_up(model)  # the first decode is several times slower than the next
        except Exception as e:  # a bad folder or repo must not take the other variants down with it
            log.warning("skipping model %s: %s", source, e)
            continue
        name = display_name(source, names_from or sources)  # names the source too where two would read alike
        kind = next_lines if model_class is NextLine else char_models
        loop = (shared_decoders(processes).loop(source, model)
                if model_class is CharRNN and settings.decoding == "loop" else None)
        bigram = getattr(model, "counts", None) or read_bigram(source)  # a model that mixes it in has read it
        kind[name] = Variant(source, model, read_metrics(source), bigram, loop)
        log.info("loaded %s from %s on %s", name, source, device)
    return char_models, next_lines


def warm_up(model) -> None:
    if isinstance(model, NextLine):
        model.next_line("", max_length=2)
    else:
        model.generate("", 2)
