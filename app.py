"""The charrnn demo: choose a model, give a prefix, watch the continuation stream in (locally or as a HF Space).

    python app.py                      # the variants in models.txt (make models trains them)
    CHARRNN_MODELS=user/charrnn-jaychou-lstm python app.py    # or Hub repos
"""
import html
import json
import logging
import math
import os
import time
from dataclasses import dataclass

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import spaces  # noqa: E402  (before torch: on a ZeroGPU Space it patches torch's CUDA start-up)
import gradio as gr  # noqa: E402
import torch  # noqa: E402

from charrnn import CharRNN, ModelFileError  # noqa: E402
from charrnn.catalog import CELL_NAMES, display_name, model_sources  # noqa: E402
from charrnn.loading import fetch  # noqa: E402

log = logging.getLogger("charrnn.app")

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
MAX_LENGTH = 1000
MAX_PREFIX = 2000  # longer prefixes keep only their end: the state forgets far-back text anyway
UPDATE_EVERY = 0.04  # seconds between streamed updates (the first character goes out at once)
CONCURRENCY = 16 if DEVICE.type == "cuda" else 8  # measured: a burst of 16 all get text within 0.5 s on 2 cores
QUEUE_SIZE = 64
EXAMPLES = {
    "Jay Chou lyrics": ["分开", "不分开", "我想要", "天青色等烟雨", "窗外的麻雀", "说了再见"],
    "The Time Machine": ["The Time Traveller", "It was ", "the machine "],
}
NO_MODELS = (
    "**No model is available yet.** Train the variants with `make models` (a few CPU minutes each), "
    "or point `CHARRNN_MODELS` at Hugging Face Hub repos, e.g. "
    "`CHARRNN_MODELS=user/charrnn-jaychou-lstm python app.py`, then restart the app."
)
THEME = gr.themes.Soft(primary_hue="rose", secondary_hue="slate")
CSS = """
.gradio-container { max-width: 960px !important; margin: auto; }
#output textarea { font-size: 1.15rem; line-height: 1.7; }
#notice:empty { display: none; }
"""


@dataclass
class Variant:
    source: str
    model: CharRNN
    metrics: dict

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


def load_variants(sources: list[str], device: torch.device) -> dict[str, Variant]:
    """Every source that loads, by display name; one that does not is skipped with a warning naming it."""
    variants = {}
    for source in sources:
        try:
            model = CharRNN.from_pretrained(source).to(device)
            model.generate("", 2)  # warm-up: the first decode is several times slower than the next
        except Exception as e:  # a bad folder or repo must not take the other variants down with it
            log.warning("skipping model %s: %s", source, e)
            continue
        name = display_name(source, sources)  # names the source too where two would read alike
        variants[name] = Variant(source, model, read_metrics(source))
        log.info("loaded %s from %s on %s", name, source, device)
    return variants


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


def refusal(message: str) -> gr.Error:
    """An error the user made: shown to them, and no traceback in the server's log."""
    return gr.Error(message, print_exception=False)


def decoding_options(length, temperature, top_k, top_p, seed) -> dict:
    """The model's options from the inputs. Gradio range-checks sliders and numbers, but NaN passes any range check."""
    named = {"Length": length, "Temperature": temperature, "Top-k": top_k, "Top-p": top_p, "Seed": seed}
    for label, value in named.items():
        if value is not None and not math.isfinite(value):
            raise refusal(f"{label} must be a finite number, got {value!r}.")
    return {"length": round(length), "temperature": float(temperature), "top_k": round(top_k) or None,
            "top_p": top_p if top_p < 1 else None, "seed": None if seed is None else round(seed)}


def build_demo(variants: dict[str, Variant]) -> gr.Blocks:
    def variant_info(name: str | None) -> str:
        return variants[name].describe() if name in variants else ""

    def prefix_notice(name: str | None, prefix: str | None) -> str:
        return "\n\n".join(f"⚠️ {html.escape(n)}" for n in prefix_notices(variants.get(name), prefix or ""))

    @spaces.GPU
    def stream(variant: str, prefix: str, length: int, temperature: float, top_k, top_p, seed):
        """The continuation so far, in small chunks. On ZeroGPU this runs in a GPU worker: plain arguments only."""
        text, last_update = "", 0.0
        for char in variants[variant].model.stream(prefix, length, temperature, top_k, top_p, seed):
            text += char
            if time.perf_counter() - last_update >= UPDATE_EVERY or len(text) == length:
                last_update = time.perf_counter()
                yield text

    def generate(variant, prefix, length, temperature, top_k, top_p, seed):
        """Continue `prefix` with `length` characters from the model named `variant`, streaming the text so far.

        temperature 0 is greedy; top_k 0 and top_p 1 turn those filters off; seed None gives a random sample.
        """
        if variant not in variants:
            raise refusal(NO_MODELS if not variants else
                          f"Unknown model {variant!r}; choose one of: {', '.join(variants)}.")
        prefix = prefix or ""
        for notice in prefix_notices(variants[variant], prefix):
            gr.Warning(html.escape(notice))  # a toast renders HTML
        options = decoding_options(length, temperature, top_k, top_p, seed)
        try:
            yield from stream(variant, prefix[-MAX_PREFIX:], **options)
        except ValueError as e:
            raise refusal(str(e)) from None

    names = list(variants)
    with gr.Blocks(title="charrnn · character-level lyrics generator") as demo:
        gr.Markdown("# charrnn\nCharacter-level recurrent networks that write Jay Chou style lyrics (and Victorian "
                    "prose), one character at a time. Choose a model, give it a start, and watch it continue.")
        if not variants:
            gr.Markdown(NO_MODELS)
        with gr.Row(equal_height=True):
            picker = gr.Dropdown(names, value=names[0] if names else None, label="Model", scale=2, min_width=260)
            with gr.Column(scale=3, min_width=260):  # beside the choice on a laptop, under it on a phone
                info = gr.Markdown(variant_info(names[0] if names else None), elem_id="info")
        prefix = gr.Textbox(label="Prefix", placeholder="分开 (press Enter to generate)", value="分开", max_lines=4)
        notice = gr.Markdown(elem_id="notice")
        with gr.Row():
            length = gr.Slider(1, MAX_LENGTH, value=200, step=1, label="Length", info="characters to add",
                               min_width=240)
            temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature",
                                    info="0 is greedy; higher is wilder", min_width=240)
        with gr.Accordion("Advanced", open=False):
            with gr.Row():
                top_k = gr.Slider(0, 100, value=0, step=1, label="Top-k", info="0 keeps every character")
                top_p = gr.Slider(0.01, 1, value=1, step=0.01, label="Top-p", info="1 keeps every character")
                seed = gr.Number(None, label="Seed", info="empty for a new sample each time", minimum=0,
                                 maximum=2**32 - 1)
        with gr.Row():
            go = gr.Button("Generate", variant="primary")
            stop = gr.Button("Stop", variant="stop")
        output = gr.Textbox(label="Continuation", lines=8, max_lines=20, buttons=["copy"], interactive=False,
                            elem_id="output")
        for corpus, prefixes in EXAMPLES.items():
            known = [p for p in prefixes if any(not v.model.vocab.unknown(p) for v in variants.values())]
            if known:
                gr.Examples([[p] for p in known], inputs=[prefix], label=f"Examples · {corpus}")
        gr.Markdown(f"<small>Decoding on {'a GPU' if DEVICE.type == 'cuda' else 'the CPU'}; also callable from Python "
                    "with gradio_client (see “Use via API” below).</small>")

        picker.change(variant_info, picker, info, queue=False, api_visibility="private")
        gr.on([picker.change, prefix.change, demo.load], prefix_notice, [picker, prefix], notice, queue=False,
              show_progress="hidden", api_visibility="private")
        run = gr.on([go.click, prefix.submit], generate, [picker, prefix, length, temperature, top_k, top_p, seed],
                    output, api_name="generate", concurrency_limit=CONCURRENCY, trigger_mode="once",
                    show_progress="hidden")  # the growing text is the progress (and a Stop can race to "Error")
        stop.click(None, cancels=[run])
    return demo.queue(max_size=QUEUE_SIZE)


def launch(demo: gr.Blocks, **options):
    """Launch with the page's look (Gradio 6 takes theme and css here); options go to demo.launch."""
    return demo.launch(theme=THEME, css=CSS, **options)


def main() -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    variants = load_variants(model_sources(), DEVICE)
    if not variants:
        log.warning(NO_MODELS.replace("**", "").replace("`", ""))
    launch(build_demo(variants))


if __name__ == "__main__":
    main()
