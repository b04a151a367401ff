"""The writer: a prefix, the form of the lyric (lines, acrostic, rhyme, no loops), and the text streaming in
shaded by the model's confidence; or four candidates side by side, any of which one click continues.
Also the /generate and /candidates endpoints (gradio_client, MCP): the same checks and the same library calls."""
import html
import threading
import time
from collections.abc import Iterator

import gradio as gr

from charrnn import limits
from charrnn.names import CORPUS_NAMES
from charrnn.rhyme import GROUPS

from .common import (Busy, Variant, describe, documented, models_for, number, page_seed, prefix_notices, refused, seed_box,
                     string, variant_of, warn_about_prefix, writing)
from .lyric import LEGEND, candidate_html, plain, prefix_html, step_html

UPDATE_EVERY = 0.04  # seconds between streamed updates (the first character goes out at once)
PAGE_CANDIDATES = 4
LOOP_NGRAM = 4  # "avoid loops": no phrase of this many characters twice
EXAMPLES = {  # prefix, lines, acrostic, rhyme
    CORPUS_NAMES["jaychou"]: [["分开", 0, "", "off"], ["", 4, "春夏秋冬", "江阳"], ["窗外的麻雀\n在电线杆上多嘴\n", 4, "", "auto"],
                        ["天青色等烟雨", 6, "", "auto"], ["说了再见", 4, "", "言前"], ["不分开", 0, "", "off"]],
    CORPUS_NAMES["timemachine"]: [["The Time Traveller", 0, "", "off"], ["It was ", 4, "", "auto"], ["the machine ", 0, "", "off"]],
}


SHOW_LYRIC = "() => document.querySelector('#lyric').scrollIntoView({block: 'start', behavior: 'smooth'})"
UPDATES_PER_SECOND = 100  # all streams together: each update costs gradio CPU time (bench/app_latency.py)
SLOWEST_UPDATE = 0.5


class Pace:
    """How often a stream sends what it has: every UPDATE_EVERY seconds alone, less often when many stream at once,
    so that together they send about UPDATES_PER_SECOND (at 0.04 s, 16 streams spent more CPU on gradio's updates
    than on decoding)."""

    def __init__(self):
        self.streams, self.lock = 0, threading.Lock()

    def interval(self) -> float:
        return min(max(UPDATE_EVERY, self.streams / UPDATES_PER_SECOND), SLOWEST_UPDATE)

    def throttled(self, lists: Iterator[list]) -> Iterator[list]:
        """Lists of pieces merged so that each goes out one interval after the last (the first at once)."""
        with self.lock:
            self.streams += 1
        try:
            batch, last = [], 0.0
            for pieces in lists:
                batch += pieces
                if time.perf_counter() - last >= self.interval():
                    last = time.perf_counter()
                    yield batch
                    batch = []
            if batch:
                yield batch
        finally:
            with self.lock:
                self.streams -= 1


PACE = Pace()
throttled = PACE.throttled


def rhyme_choices(variant: Variant | None) -> list[tuple[str, str]]:
    choices = [("off", "off"), ("auto: as the last line", "auto")]
    if variant is not None and variant.model.rhymes.scheme.language == "zh":
        choices += [(f"{name} · {example}", name) for name, (_, example) in GROUPS.items()]
    return choices


def form_options(variant: Variant, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme,
                 repetition_penalty, no_repeat_ngram) -> tuple[int, dict]:
    """The length and the library's options from what a page or a client sent, or a clear refusal."""
    rhyme = string("Rhyme", rhyme, limits.RHYME).strip()
    options = dict(
        temperature=number("Temperature", temperature, limits.TEMPERATURE),
        top_k=number("Top-k", top_k, limits.Range(0, len(variant.model.vocab)), whole=True) or None,
        top_p=number("Top-p", top_p, limits.TOP_P),
        seed=number("Seed", seed, limits.SEED, whole=True, optional=True),
        lines=number("Lines", lines, limits.LINES, whole=True) or None,
        acrostic=string("Acrostic", acrostic, limits.ACROSTIC).strip() or None,
        rhyme=None if rhyme in ("", "off") else rhyme,
        repetition_penalty=number("Repetition penalty", repetition_penalty, limits.REPETITION_PENALTY),
        no_repeat_ngram=number("No repeated n-gram", no_repeat_ngram, limits.NO_REPEAT_NGRAM, whole=True),
    )
    options["top_p"] = options["top_p"] if options["top_p"] < 1 else None
    return number("Length", length, limits.LENGTH, whole=True), options


def build(variants: dict[str, Variant], decoding: str = "loop") -> gr.Dropdown:
    """The writer's controls and events, inside the caller's Blocks (decoding: engine.settings); returns its model
    list."""

    def decode(request, name, prefix, details, length, *options) -> Iterator[list]:
        variant = variant_of(variants, name, request)
        prefix = warn_about_prefix(variant, string("Prefix", prefix, limits.TEXT))
        length, options = form_options(variant, length, *options)
        try:
            yield prefix
            yield from throttled(variant.stream(prefix, length, options, details, every=PACE.interval))
        except (ValueError, Busy) as e:
            raise refused(e) from None

    def generate(variant: str, prefix: str, length: int = 200, temperature: float = 0.8, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, lines: int = 0, acrostic: str = "", rhyme: str = "off",
                 repetition_penalty: float = 1.0, no_repeat_ngram: int = LOOP_NGRAM,
                 request: gr.Request = None) -> Iterator[str]:
        """Continue `prefix` with the model named `variant`, streaming the continuation so far (without the prefix).

        Args:
            variant: the model's name, as the `models` tool (or the page's Model list) gives it.
            prefix: the text to continue, up to $TEXT characters (the last $PREFIX are read); characters the model
                does not know are read as <unk>.
            length: the most characters to write, $LENGTH.
            temperature: 0 is greedy (always the likeliest character); higher is more adventurous ($TEMPERATURE).
            top_k: sample only from the k likeliest characters; 0 turns this off.
            top_p: $TOP_P: sample only from the likeliest characters whose probability reaches p; 1 turns this off.
            seed: $SEED: the same seed gives the same text; None for a new sample each time.
            lines: $LINES: stop after this many lines (a line ends at a line break); 0 for no limit.
            acrostic: characters that begin the lines, one line each (藏头), e.g. 春夏秋冬, up to $ACROSTIC; empty for none.
            rhyme: "off", "auto" (rhyme with the prefix's last line, else the first line written), a Chinese rhyme
                group (十三辙, e.g. 江阳) or one of its characters, or an English word.
            repetition_penalty: $REPETITION_PENALTY: 1 is off; above 1 makes characters already used less likely (CTRL's penalty).
            no_repeat_ngram: $NO_REPEAT_NGRAM: never write the same run of this many characters twice (0 is off; 4 avoids loops).
        """
        chunks = decode(request, variant, prefix, False, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme,
                        repetition_penalty, no_repeat_ngram)
        next(chunks)  # the prefix
        written = ""
        for batch in chunks:
            written += "".join(batch)
            yield written

    def write(name, prefix, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme, avoid_loops,
              loop_length, repetition_penalty, request: gr.Request):
        """The page's view of generate: the whole lyric as HTML, each new character shaded by its probability."""
        chunks = decode(request, name, prefix, True, length, temperature, top_k, top_p, page_seed(seed), lines, acrostic,
                        rhyme, repetition_penalty, loop_length if avoid_loops else 0)
        lyric = prefix_html(next(chunks))
        yield lyric
        for batch in chunks:
            lyric += "".join(map(step_html, batch))
            yield lyric

    def candidates(variant: str, prefix: str, n: int = PAGE_CANDIDATES, length: int = 200, temperature: float = 0.8,
                   top_k: int = 0, top_p: float = 1.0, seed: int | None = None, lines: int = 0, acrostic: str = "",
                   rhyme: str = "off", repetition_penalty: float = 1.0,
                   no_repeat_ngram: int = LOOP_NGRAM, request: gr.Request = None) -> list[dict]:
        """Write `n` continuations of `prefix` together and rank them, best first, by the model's mean log-probability.

        Args:
            variant: the model's name, as the `models` tool (or the page's Model list) gives it.
            prefix: the text to continue, up to $TEXT characters (the last $PREFIX are read).
            n: how many candidates, $CANDIDATES.
            length: the most characters each may have, $LENGTH.
            temperature: 0 is greedy (then every candidate is the same); 0.8 by default ($TEMPERATURE).
            top_k: sample only from the k likeliest characters; 0 turns this off.
            top_p: $TOP_P: sample only from the likeliest characters whose probability reaches p; 1 turns this off.
            seed: $SEED: candidate i uses seed + i, so the same seed gives the same candidates; None for new ones.
            lines: $LINES: stop each after this many lines; 0 for no limit.
            acrostic: characters that begin the lines, one line each (藏头), up to $ACROSTIC; empty for none.
            rhyme: "off", "auto", a Chinese rhyme group (十三辙) or one of its characters, or an English word.
            repetition_penalty: $REPETITION_PENALTY: 1 is off; above 1 makes characters already used less likely.
            no_repeat_ngram: $NO_REPEAT_NGRAM: never write the same run of this many characters twice (0 is off).

        Returns:
            one dict per candidate: text (the continuation), logprob (total, natural log), mean_logprob, perplexity.
        """
        variant_ = variant_of(variants, variant, request)
        prefix = warn_about_prefix(variant_, string("Prefix", prefix, limits.TEXT))
        n = number("n", n, limits.CANDIDATES, whole=True)
        length, options = form_options(variant_, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme,
                                       repetition_penalty, no_repeat_ngram)
        try:
            found = variant_.candidates(prefix, n, length, options)
        except (ValueError, Busy) as e:
            raise refused(e) from None
        return [dict(text=c.text, logprob=c.logprob, mean_logprob=c.mean_logprob, perplexity=c.perplexity)
                for c in found]

    def write_candidates(name, prefix, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme, avoid_loops,
                         loop_length, repetition_penalty, request: gr.Request):
        found = candidates(name, prefix, PAGE_CANDIDATES, length, temperature, top_k, top_p, page_seed(seed), lines,
                           acrostic, rhyme, repetition_penalty, loop_length if avoid_loops else 0, request)
        tail = (prefix or "")[-limits.PREFIX:].split("\n")[-1]  # the prefix's last line, to read each on from
        cards = [candidate_html(rank, tail, c["text"], c["perplexity"], c["mean_logprob"])
                 for rank, c in enumerate(found, 1)]
        return *cards, [c["text"] for c in found], gr.Column(visible=True)

    names = list(variants)
    first = variants[names[0]] if names else None
    with gr.Row(equal_height=True):
        picker = gr.Dropdown(names, value=names[0] if names else None, label="Model", scale=2, min_width=260)
        with gr.Column(scale=3, min_width=260):  # beside the choice on a laptop, under it on a phone
            info = gr.Markdown(describe(first) if first else "", elem_id="info")
    prefix = gr.Textbox(label="Prefix", placeholder="分开 (press Enter to write)", value="分开", max_lines=6)
    notice = gr.Markdown(elem_id="notice")
    with gr.Row():
        length = gr.Slider(*limits.LENGTH, value=200, step=1, label="Length", info="most characters to add",
                           min_width=240)
        temperature = gr.Slider(*limits.TEMPERATURE, value=0.8, step=0.05, label="Temperature", info="0 is greedy; higher is wilder",
                                min_width=240)
    with gr.Row(elem_id="form"):
        lines = gr.Slider(*limits.LINES, value=0, step=1, label="Lines", info="0: no limit", min_width=160)
        acrostic = gr.Textbox(label="Acrostic (藏头)", placeholder="春夏秋冬", max_lines=1, min_width=160,
                              info="each line begins with one of these")
        rhyme = gr.Dropdown(rhyme_choices(first), value="off", label="Rhyme", allow_custom_value=True, min_width=160,
                            elem_id="rhyme",
                            info="line ends in one rhyme (十三辙); English: type a word")
        avoid_loops = gr.Checkbox(value=True, label="Avoid loops", info="no phrase twice", min_width=120)
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            top_k = gr.Slider(0, 100, value=0, step=1, label="Top-k", info="0 keeps every character")
            top_p = gr.Slider(*limits.TOP_P, value=1, step=0.01, label="Top-p", info="1 keeps every character")
            seed = seed_box(info="empty for a new sample each time")
        with gr.Row():
            loop_length = gr.Slider(2, limits.NO_REPEAT_NGRAM.high, value=LOOP_NGRAM, step=1, label="Loop length",
                                    info="“avoid loops” forbids repeating a run of this many characters")
            repetition_penalty = gr.Slider(*limits.REPETITION_PENALTY, value=1, step=0.05, label="Repetition penalty",
                                           info="1 is off; higher avoids characters already used")
    with gr.Row():
        go = gr.Button("Write", variant="primary", min_width=100)
        go_many = gr.Button(f"Write {PAGE_CANDIDATES}", min_width=100)
        stop = gr.Button("Stop", variant="stop", min_width=100)
    # Not gradio's autoscroll: outside a scrolling box it scrolls the whole page to its end, past the lyric to the
    # candidates and examples below it, at every update of a reader who was near there (one who chose a candidate).
    lyric = gr.HTML("", html_template='<div class="lyric">${value}</div>', elem_id="lyric")
    with gr.Row():
        gr.HTML(LEGEND)
        copy = gr.Button("Copy", size="sm", scale=0, min_width=80)
    picks = gr.State([])
    with gr.Column(visible=False) as choices:
        gr.Markdown("**Candidates**, best first by the model's own mean log-probability (lower perplexity: "
                    "the model found it more natural). Continue from the one you like.")
        with gr.Row():
            cards, follow = [], []
            for i in range(PAGE_CANDIDATES):
                with gr.Column(min_width=200):
                    cards.append(gr.HTML(elem_classes="card"))
                    follow.append(gr.Button(f"Continue from #{i + 1}", size="sm"))
    for index, (corpus, examples) in enumerate(EXAMPLES.items()):
        known = [e for e in examples if any(not v.model.vocab.unknown(e[0] + e[2]) for v in variants.values())]
        if known:
            gr.Examples(known, inputs=[prefix, lines, acrostic, rhyme], label=f"Examples · {corpus}",
                        elem_id=f"examples-{index}")
    on_gpu = first is not None and first.model.device.type == "cuda"
    gr.Markdown(f"<small>Decoding on {'a GPU' if on_gpu else 'the CPU'}; also callable from Python "
                "with gradio_client and by AI agents over MCP (see “Use via API” below).</small>")

    def chosen(name, request: gr.Request):
        variant = models_for(variants, request).get(name)
        return (describe(variant) if variant else "",
                gr.Dropdown(choices=rhyme_choices(variant), value="off"))

    def prefix_notice(name, text_, request: gr.Request):
        variant = models_for(variants, request).get(name)
        return "\n\n".join(f"⚠️ {html.escape(n)}" for n in prefix_notices(variant, text_ or ""))

    picker.change(chosen, picker, [info, rhyme], queue=False, api_visibility="private")
    gr.on([picker.change, prefix.change], prefix_notice, [picker, prefix], notice, queue=False,
          show_progress="hidden", api_visibility="private")
    inputs = [picker, prefix, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme, avoid_loops,
              loop_length, repetition_penalty]
    limit = writing(decoding)
    private = dict(**limit, api_visibility="private")
    run = gr.on([go.click, prefix.submit], write, inputs, lyric, trigger_mode="once", show_progress="hidden",
                **private)  # the growing text is the progress (and a Stop can race to "Error")
    many = go_many.click(write_candidates, inputs, [*cards, picks, choices], trigger_mode="once", **private)
    stop.click(None, cancels=[run, many])
    copy.click(None, js="() => navigator.clipboard.writeText(document.querySelector('#lyric .lyric').innerText)")
    for i, button in enumerate(follow):
        chosen = button.click(lambda p, texts, i=i: (p or "") + texts[i] if i < len(texts) else p, [prefix, picks],
                              prefix, queue=False, api_visibility="private")
        chosen.then(write, inputs, lyric, show_progress="hidden", **private)
        button.click(None, js=SHOW_LYRIC)  # the chosen candidate is continued up there, above the candidates
    gr.api(documented(generate), api_name="generate", **limit)
    gr.api(documented(candidates), api_name="candidates", **limit)
    return picker
