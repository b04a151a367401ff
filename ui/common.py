"""What every part of the page shares: the limits its controls offer, how a model is described, and checks that
refuse bad input clearly."""
import html
import math
from string import Template

import gradio as gr

from charrnn import errors, limits
from charrnn.names import CELL_NAMES
from engine.catalog import Variant, log
from engine.loop import ROWS, WAITING, Busy  # noqa: F401  (Busy: what the tabs catch and word)

CONCURRENCY = 8  # requests decoded at once per group where each decodes alone (a CPU has few cores to share)
DECODING = "decoding"  # the concurrency group of the endpoints that decode per request
NO_MODELS = (
    "**No model is available yet.** Train the variants with `make models` (a few CPU minutes each), "
    "or point `CHARRNN_MODELS` at Hugging Face Hub repos, e.g. "
    "`CHARRNN_MODELS=user/charrnn-jaychou-lstm python app.py`, then restart the app."
)


def writing(decoding: str) -> dict:
    """The concurrency of the endpoints that write: every request the loops can hold reaches them (beyond that they
    answer Busy themselves, at once), or CONCURRENCY at a time where each decodes alone."""
    if decoding == "loop":
        return dict(concurrency_limit=ROWS + WAITING, concurrency_id="writing")
    return dict(concurrency_limit=CONCURRENCY, concurrency_id=DECODING)


def describe(variant: Variant) -> str:
    model, m = variant.model, variant.metrics
    parts = [f"**{CELL_NAMES.get(model.cell, model.cell)}**", f"{model.num_parameters() / 1e6:.2f} M parameters",
             f"{len(model.vocab):,} characters in its vocabulary"]
    if "val_ppl" in m:
        baseline = f" (bigram baseline {m['bigram_ppl']:.0f})" if "bigram_ppl" in m else ""
        parts.append(f"held-out perplexity **{m['val_ppl']:.1f}**{baseline}, lower is better")
    if "corpus" in m:
        parts.append(f"trained on `{m['corpus']}`")
    return " · ".join(parts)


def documented(function, **more):
    """function, its docstring's $NAMEs filled in from charrnn.limits (and more): what the API's docs and the MCP
    tools say of each argument's range is the very limit the checks apply."""
    shown = {name: limits.shown(value) if isinstance(value, int) else str(value)
             for name, value in vars(limits).items() if name.isupper()}
    function.__doc__ = Template(function.__doc__).substitute(shown, **{k: str(v) for k, v in more.items()})
    return function


# The page's name for each option the library names, as its controls and the API's arguments call it.
LABELS = dict(length="Length", temperature="Temperature", top_k="Top-k", top_p="Top-p", seed="Seed", lines="Lines",
              acrostic="Acrostic", rhyme="Rhyme", repetition_penalty="Repetition penalty",
              no_repeat_ngram="No repeated n-gram", n="n", text="Text", context="Context", line="Line",
              line_lengths="Line lengths", scheme="Rhyme scheme", keywords="Keywords",
              keywords_in_order="Keywords in order", keep="Keep", lyric="Lyric", candidates="Candidates")


def refusal(message: str) -> gr.Error:
    """An error the user made: shown to them, and no traceback in the server's log."""
    return gr.Error(message, print_exception=False)


def refused(error: Exception) -> gr.Error:
    return refusal(worded(error))


def worded(error: Exception) -> str:
    """The page's sentence for what the library or the engine refused (errors.OptionError, Busy), in the page's
    terms: the option as its control is labelled, and what to do instead."""
    if not isinstance(error, errors.OptionError):
        message = str(error)
        return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
    label = LABELS.get(error.option, error.option)
    if isinstance(error, errors.BadValue):
        note = f" ({error.note})" if error.note else ""
        return f"{label} must be {error.allowed}{note}, got {quoted(error.value)}."
    if isinstance(error, errors.EmptyText):
        return f"{label} is empty: give some text."
    if isinstance(error, errors.UnknownCharacters):
        unknown = ", ".join(map(shown, error.characters))
        return f"{label} has characters this model does not know ({unknown}): choose others, or another model."
    if isinstance(error, errors.NoRhyme):
        return (f"This model knows no word or character that rhymes with {quoted(error.value)}: choose another "
                "rhyme, or auto.")
    if isinstance(error, errors.NoLineBreak):
        undo = "clear Acrostic" if error.option == "acrostic" else f"set {label} off"
        return f"This model writes no line breaks, so it cannot keep {label}: {undo}, or choose a lyrics model."
    if isinstance(error, errors.TooShort):
        few = "too short" if error.option == "length" else "too few"
        return f"{label}: {error.value} is {few} for {error.because}: make it at least {error.needed}."
    return f"{str(error)[:1].upper()}{str(error)[1:]}."


# The models visitors trained (engine.training.Trained), where the page has a Train tab: build_demo sets it.
TRAINED = []


def models_for(variants: dict[str, Variant], request: gr.Request | None) -> dict[str, Variant]:
    """The app's models, then the ones this request's session trained (no other session sees them)."""
    if not TRAINED or request is None or not request.session_hash:
        return dict(variants)
    return {**variants, **TRAINED[0].models_of(request.session_hash)}


def variant_of(variants: dict[str, Variant], name, request: gr.Request | None = None) -> Variant:
    variants = models_for(variants, request)
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
    if len(prefix) > limits.PREFIX:
        notices.append(f"The prefix has {len(prefix):,} characters: only its last {limits.PREFIX:,} are used.")
    unknown = variant.model.vocab.unknown(prefix[-limits.PREFIX:]) if variant else []
    if unknown:
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        notices.append("Not in this model's vocabulary, so read as <unk> (unknown): "
                       f"{', '.join(shown(c) for c in unknown[:20])}{more}.")
    return notices


def warn_about_prefix(variant: Variant, prefix: str) -> str:
    """Toasts about the prefix; returns the part of it the model reads."""
    for notice in prefix_notices(variant, prefix):
        gr.Warning(html.escape(notice))  # a toast renders HTML
    return prefix[-limits.PREFIX:]


def number(label: str, value, allowed: limits.Range, whole: bool = False, optional: bool = False):
    """value as a number in the range allowed (a whole one if asked), or a clear refusal; None passes if optional."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise refusal(f"{label} must be a finite number, got {quoted(value)}.")
    if whole and value != int(value):
        raise refusal(f"{label} must be a whole number, got {quoted(value)}.")
    if value not in allowed:
        raise refusal(f"{label} must be from {allowed}, got {quoted(value)}.")
    return int(value) if whole else float(value)


def flag(label: str, value) -> bool:
    if not isinstance(value, bool):
        raise refusal(f"{label} must be true or false, got {quoted(value)}.")
    return value


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
        raise refusal(f"Seed must be a whole number from {limits.SEED}, got {quoted(text)}.")
    return number("Seed", int(text), limits.SEED, whole=True)
