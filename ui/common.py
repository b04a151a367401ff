"""What every part of the page shares: the loaded variants, the limits, and checks that refuse bad input clearly."""
import html
import json
import logging
import math
import os
from dataclasses import dataclass

import gradio as gr
import torch
from spaces.config import Config as SpacesConfig

from charrnn import CharRNN, ModelFileError, NextLine
from charrnn.catalog import CELL_NAMES, display_name
from charrnn.counts import BIGRAM_NAME, Bigram
from charrnn.loading import fetch, is_next_line
from charrnn.remote import RemoteLoop, processes_for, shared_decoders
from charrnn.serving import ROWS, WAITING, Busy

log = logging.getLogger("charrnn.app")

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
MAX_LENGTH = 1000
MAX_PREFIX = 2000  # longer prefixes keep only their end: the state forgets far-back text anyway
MAX_TEXT = 100_000  # characters of any text sent: a prefix, a start, a text to score or its context
MAX_LINES = 100
MAX_SEED = 2**32 - 1
MAX_NGRAM = 12  # the longest run "avoid loops" may forbid repeating
CONCURRENCY = 16 if DEVICE.type == "cuda" else 8  # measured: a burst of 16 all get text within 0.5 s on 2 cores
DECODING = "decoding"  # the concurrency group of the endpoints that decode per request
# Writing goes through each model's decoding loop (charrnn.serving), except on ZeroGPU, which lends the GPU per call.
SERVING = os.environ.get("CHARRNN_DECODING", "per-request" if SpacesConfig.zero_gpu else "loop")
if SERVING not in ("loop", "per-request"):
    raise SystemExit(f"CHARRNN_DECODING must be loop or per-request, got {SERVING!r}")
DECODERS = os.environ.get("CHARRNN_DECODERS", "")  # decoding processes; empty: one per core (one on a GPU)
if DECODERS and not (DECODERS.isdigit() and int(DECODERS) >= 1):
    raise SystemExit(f"CHARRNN_DECODERS must be a whole number of processes, 1 or more; got {DECODERS!r}")
# Every request the loops can hold reaches them; beyond that they answer Busy themselves, at once.
WRITING = (dict(concurrency_limit=ROWS + WAITING, concurrency_id="writing") if SERVING == "loop" else
           dict(concurrency_limit=CONCURRENCY, concurrency_id=DECODING))
NO_MODELS = (
    "**No model is available yet.** Train the variants with `make models` (a few CPU minutes each), "
    "or point `CHARRNN_MODELS` at Hugging Face Hub repos, e.g. "
    "`CHARRNN_MODELS=user/charrnn-jaychou-lstm python app.py`, then restart the app."
)


@dataclass
class Variant:
    source: str
    model: CharRNN
    metrics: dict
    bigram: Bigram | None = None  # the baseline counted on the model's training text, where its folder ships one
    loop: RemoteLoop | None = None  # the model's decoding loop, when writing is served by one

    def describe(self) -> str:
        model, m = self.model, self.metrics
        parts = [f"**{CELL_NAMES.get(model.cell, model.cell)}**", f"{model.num_parameters() / 1e6:.2f} M parameters",
                 f"{len(model.vocab):,} characters in its vocabulary"]
        if "val_ppl" in m:
            baseline = f" (bigram baseline {m['bigram_ppl']:.0f})" if "bigram_ppl" in m else ""
            parts.append(f"held-out perplexity **{m['val_ppl']:.1f}**{baseline}, lower is better")
        if "corpus" in m:
            parts.append(f"trained on `{m['corpus']}`")
        return " · ".join(parts)


def read_metrics(source: str) -> dict:
    """metrics.json beside the weights; optional (the page then shows less about the model)."""
    try:
        with open(fetch(source, "metrics.json"), encoding="utf-8") as f:
            return json.load(f)
    except (ModelFileError, OSError, ValueError):
        return {}


def read_bigram(source: str) -> Bigram | None:
    """The bigram beside the weights; optional (folders made before it was shipped have none)."""
    try:
        return Bigram.load(fetch(source, BIGRAM_NAME))
    except (ValueError, OSError) as e:
        log.info("no bigram baseline for %s: %s", source, e)
        return None


def load_models(sources: list[str], device: torch.device,
                names_from: list[str] | None = None) -> tuple[dict[str, Variant], dict[str, Variant]]:
    """Every source that loads, by display name (told apart among names_from, by default the sources): the character
    models, and the next-line models (as their configs say). One that does not load is skipped with a warning."""
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
        loop = decoders(device).loop(source, model) if model_class is CharRNN and SERVING == "loop" else None
        bigram = getattr(model, "counts", None) or read_bigram(source)  # a model that mixes it in has read it
        kind[name] = Variant(source, model, read_metrics(source), bigram, loop)
        log.info("loaded %s from %s on %s", name, source, device)
    return char_models, next_lines


def decoders(device: torch.device):
    """The decoding processes the models' loops are dealt out to."""
    return shared_decoders(int(DECODERS) if DECODERS else processes_for(device))


def load_variants(sources: list[str], device: torch.device) -> dict[str, Variant]:
    """The character models among sources (see load_models)."""
    return load_models(sources, device)[0]


def warm_up(model) -> None:
    if isinstance(model, NextLine):
        model.next_line("", max_length=2)
    else:
        model.generate("", 2)


def refusal(message: str) -> gr.Error:
    """An error the user made: shown to them, and no traceback in the server's log."""
    return gr.Error(message, print_exception=False)


def variant_of(variants: dict[str, Variant], name) -> Variant:
    if name not in variants:
        raise refusal(NO_MODELS if not variants else
                      f"Unknown model {quoted(name)}; choose one of: {', '.join(variants)}.")
    return variants[name]


def shorten(text: str, most: int = 80) -> str:
    """text as a message quotes it: its start, where it is long (a refusal never echoes a whole request back)."""
    return text if len(text) <= most else f"{text[:most]}… ({len(text):,} characters)"


def quoted(value) -> str:
    """A value a refusal names, as Python writes it, shortened."""
    return shorten(repr(value))


def shown(char: str) -> str:
    return f"“{char}”" if char.isprintable() else f"U+{ord(char):04X}"


def prefix_notices(variant: Variant | None, prefix: str) -> list[str]:
    """What the user should know about how this prefix will be read."""
    notices = []
    if len(prefix) > MAX_PREFIX:
        notices.append(f"The prefix has {len(prefix):,} characters: only its last {MAX_PREFIX:,} are used.")
    unknown = variant.model.vocab.unknown(prefix[-MAX_PREFIX:]) if variant else []
    if unknown:
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        notices.append("Not in this model's vocabulary, so read as <unk> (unknown): "
                       f"{', '.join(shown(c) for c in unknown[:20])}{more}.")
    return notices


def warn_about_prefix(variant: Variant, prefix: str) -> str:
    """Toasts about the prefix; returns the part of it the model reads."""
    for notice in prefix_notices(variant, prefix):
        gr.Warning(html.escape(notice))  # a toast renders HTML
    return prefix[-MAX_PREFIX:]


def number(label: str, value, low: float, high: float, whole: bool = False, optional: bool = False):
    """value as a number in [low, high] (a whole one if asked), or a clear refusal; None passes if optional."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise refusal(f"{label} must be a finite number, got {quoted(value)}.")
    if whole and value != int(value):
        raise refusal(f"{label} must be a whole number, got {quoted(value)}.")
    if not low <= value <= high:
        raise refusal(f"{label} must be from {low:g} to {high:g}, got {quoted(value)}.")
    return int(value) if whole else float(value)


def string(label: str, value, most: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise refusal(f"{label} must be text, got {quoted(value)}.")
    if len(value) > most:
        raise refusal(f"{label} may have at most {most:,} characters, got {len(value):,}.")
    return value


def seed_box(**options) -> gr.Textbox:
    """A seed the page may leave empty for a new sample each time (a gr.Number shows and sends 0 when empty)."""
    return gr.Textbox("", label="Seed", placeholder="empty: random", max_lines=1, **options)


def page_seed(text) -> int | None:
    """seed_box's text as a seed: None when empty, else a whole number in range, or a clear refusal."""
    text = string("Seed", text, 40).strip()
    if not text:
        return None
    if not text.isdigit():
        raise refusal(f"Seed must be a whole number from 0 to {MAX_SEED}, got {quoted(text)}.")
    return number("Seed", int(text), 0, MAX_SEED, whole=True)
