"""The writer: a prefix, the form of the lyric (lines, acrostic, rhyme, no loops, a melody's line lengths, a rhyme
scheme, keywords), and the text streaming in shaded by the model's confidence; or four candidates side by side, any of
which one click continues; then lines locked and the others rewritten, once or four ways. Also the /generate,
/candidates and /rewrite endpoints (gradio_client, MCP): the same checks and the same library calls."""
import html
import threading
import time
from collections.abc import Iterator

import gradio as gr

from charrnn import limits
from charrnn import song as song_form
from charrnn.names import CORPUS_NAMES
from charrnn.rhyme import GROUPS

from .common import (Busy, Variant, describe, documented, flag, models_for, number, page_seed, prefix_notices, refusal,
                     refused, seed_box, string, variant_of, warn_about_prefix, writing)
from .lyric import LEGEND, candidate_html, plain, prefix_html, step_html

UPDATE_EVERY = 0.04  # seconds between streamed updates (the first character goes out at once)
PAGE_CANDIDATES = 4
LOOP_NGRAM = 4  # "avoid loops": no phrase of this many characters twice
EXAMPLES = {  # prefix, lines, acrostic, rhyme, line lengths, rhyme scheme, keywords
    CORPUS_NAMES["jaychou"]: [
        ["分开", 0, "", "off", "", "", ""], ["", 4, "春夏秋冬", "江阳", "", "", ""],
        ["", 0, "", "off", "7,7,7,7", "AAXA", "雨, 回忆"],  # a quatrain of sevens (七言绝句): lines 1, 2 and 4 rhyme
        ["窗外的麻雀\n在电线杆上多嘴\n", 4, "", "auto", "", "", ""], ["", 0, "", "off", "5,5,7,5", "XAXA", "天"],
        ["天青色等烟雨", 6, "", "auto", "", "", ""], ["说了再见", 4, "", "言前", "", "", ""]],
    CORPUS_NAMES["timemachine"]: [
        ["The Time Traveller", 0, "", "off", "", "", ""],
        ["", 0, "", "off", "8,6,8,6", "ABAB", "time"],  # ballad metre: common measure
        ["It was ", 4, "", "auto", "", "", ""], ["the machine ", 0, "", "off", "8,8,8,8", "AABB A=night", ""]],
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
                 repetition_penalty, no_repeat_ngram, line_lengths="", scheme="", keywords="",
                 keywords_in_order=False) -> tuple[int, dict]:
    """The length and the library's options from what a page or a client sent, or a clear refusal (the library
    reads line lengths, schemes and keywords, and refuses them in its own words)."""
    rhyme = string("Rhyme", rhyme, limits.RHYME).strip()
    flag("Keywords in order", keywords_in_order)
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
        line_lengths=string("Line lengths", line_lengths, limits.PATTERN * 4).strip() or None,
        scheme=string("Rhyme scheme", scheme, limits.SCHEME).strip() or None,
        keywords=string("Keywords", keywords, limits.KEYWORDS * (limits.KEYWORD + 2)).strip() or None,
        keywords_in_order=keywords_in_order,
    )
    options["top_p"] = options["top_p"] if options["top_p"] < 1 else None
    return number("Length", length, limits.LENGTH, whole=True), options


def build(variants: dict[str, Variant], decoding: str = "loop",
          next_lines: dict[str, Variant] | None = None) -> gr.Dropdown:
    """The writer's controls and events, inside the caller's Blocks (decoding: engine.settings; next_lines: the
    next-line models, whose lines rewrites may draw on); returns its model list."""
    next_lines = {} if next_lines is None else next_lines

    def decode(request, name, prefix, details, length, *options) -> Iterator[list]:
        variant = variant_of(variants, name, request)
        prefix = warn_about_prefix(variant, string("Prefix", prefix, limits.TEXT))
        length, options = form_options(variant, length, *options)
        try:  # the options checked before the prefix goes out: a refused request leaves the page's lyric as it was
            pieces = variant.stream(prefix, length, options, details, every=PACE.interval)
            yield prefix
            yield from throttled(pieces)
        except (ValueError, Busy) as e:
            raise refused(e) from None

    def generate(variant: str, prefix: str, length: int = 200, temperature: float = 0.8, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, lines: int = 0, acrostic: str = "", rhyme: str = "off",
                 repetition_penalty: float = 1.0, no_repeat_ngram: int = LOOP_NGRAM, line_lengths: str = "",
                 scheme: str = "", keywords: str = "", keywords_in_order: bool = False,
                 request: gr.Request = None) -> Iterator[str]:
        """Continue `prefix` with the model named `variant`, streaming the continuation so far (without the prefix).

        Args:
            variant: the model's name, as the `models` tool (or the page's Model list) gives it.
            prefix: the text to continue, up to $TEXT characters (the last $PREFIX are read); characters the model
                does not know are read as <unk>.
            length: the most characters to write, $LENGTH (with line_lengths, raised to what the lines need).
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
            line_lengths: a melody's line lengths, e.g. "7,7,5,7": each line's sung characters (Chinese; punctuation
                and spaces do not count) or syllables (English, by the CMU dictionary), each $LINE_LENGTH, repeated
                over `lines` (one verse of them when lines is 0); empty for none.
            scheme: a rhyme scheme, e.g. "AABB", "ABAB" or "XAXA" (X: a free line), a letter's rhyme set by its first
                line or given: "AABB A=江阳 B=花" (English: "ABAB A=time"); with rhyme "off"; empty for none.
            keywords: up to $KEYWORDS words the lyric holds, each once, e.g. "雨, 回忆"; empty for none.
            keywords_in_order: the keywords in the order given.
        """
        chunks = decode(request, variant, prefix, False, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme,
                        repetition_penalty, no_repeat_ngram, line_lengths, scheme, keywords, keywords_in_order)
        next(chunks)  # the prefix
        written = ""
        for batch in chunks:
            written += "".join(batch)
            yield written

    def write(name, prefix, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme, avoid_loops,
              loop_length, repetition_penalty, line_lengths, scheme, keywords, in_order, request: gr.Request):
        """The page's view of generate: the whole lyric as HTML, each new character shaded by its probability, and
        the lyric as text (what Rewrite reads)."""
        chunks = decode(request, name, prefix, True, length, temperature, top_k, top_p, page_seed(seed), lines, acrostic,
                        rhyme, repetition_penalty, loop_length if avoid_loops else 0, line_lengths, scheme, keywords,
                        in_order)
        text = next(chunks)
        lyric = prefix_html(text)
        yield lyric, text
        for batch in chunks:
            lyric += "".join(map(step_html, batch))
            text += "".join(step.char for step in batch)
            yield lyric, text

    def candidates(variant: str, prefix: str, n: int = PAGE_CANDIDATES, length: int = 200, temperature: float = 0.8,
                   top_k: int = 0, top_p: float = 1.0, seed: int | None = None, lines: int = 0, acrostic: str = "",
                   rhyme: str = "off", repetition_penalty: float = 1.0, no_repeat_ngram: int = LOOP_NGRAM,
                   line_lengths: str = "", scheme: str = "", keywords: str = "", keywords_in_order: bool = False,
                   request: gr.Request = None) -> list[dict]:
        """Write `n` continuations of `prefix` together and rank them, best first, by the model's mean log-probability.

        Args:
            variant: the model's name, as the `models` tool (or the page's Model list) gives it.
            prefix: the text to continue, up to $TEXT characters (the last $PREFIX are read).
            n: how many candidates, $CANDIDATES.
            length: the most characters each may have, $LENGTH (with line_lengths, raised to what the lines need).
            temperature: 0 is greedy (then every candidate is the same); 0.8 by default ($TEMPERATURE).
            top_k: sample only from the k likeliest characters; 0 turns this off.
            top_p: $TOP_P: sample only from the likeliest characters whose probability reaches p; 1 turns this off.
            seed: $SEED: candidate i uses seed + i, so the same seed gives the same candidates; None for new ones.
            lines: $LINES: stop each after this many lines; 0 for no limit.
            acrostic: characters that begin the lines, one line each (藏头), up to $ACROSTIC; empty for none.
            rhyme: "off", "auto", a Chinese rhyme group (十三辙) or one of its characters, or an English word.
            repetition_penalty: $REPETITION_PENALTY: 1 is off; above 1 makes characters already used less likely.
            no_repeat_ngram: $NO_REPEAT_NGRAM: never write the same run of this many characters twice (0 is off).
            line_lengths: each line's sung characters (Chinese) or syllables (English), e.g. "7,7,5,7"; empty for none.
            scheme: a rhyme scheme, e.g. "AABB" or "ABAB A=江阳" (X: a free line); empty for none.
            keywords: up to $KEYWORDS words each candidate holds once, e.g. "雨, 回忆"; empty for none.
            keywords_in_order: the keywords in the order given.

        Returns:
            one dict per candidate: text (the continuation), logprob (total, natural log), mean_logprob, perplexity.
        """
        variant_ = variant_of(variants, variant, request)
        prefix = warn_about_prefix(variant_, string("Prefix", prefix, limits.TEXT))
        n = number("n", n, limits.CANDIDATES, whole=True)
        length, options = form_options(variant_, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme,
                                       repetition_penalty, no_repeat_ngram, line_lengths, scheme, keywords,
                                       keywords_in_order)
        try:
            found = variant_.candidates(prefix, n, length, options)
        except (ValueError, Busy) as e:
            raise refused(e) from None
        return [dict(text=c.text, logprob=c.logprob, mean_logprob=c.mean_logprob, perplexity=c.perplexity)
                for c in found]

    def write_candidates(name, prefix, length, temperature, top_k, top_p, seed, lines, acrostic, rhyme, avoid_loops,
                         loop_length, repetition_penalty, line_lengths, scheme, keywords, in_order,
                         request: gr.Request):
        found = candidates(name, prefix, PAGE_CANDIDATES, length, temperature, top_k, top_p, page_seed(seed), lines,
                           acrostic, rhyme, repetition_penalty, loop_length if avoid_loops else 0, line_lengths,
                           scheme, keywords, in_order, request)
        tail = (prefix or "")[-limits.PREFIX:].split("\n")[-1]  # the prefix's last line, to read each on from
        cards = [candidate_html(rank, tail, c["text"], c["perplexity"], c["mean_logprob"])
                 for rank, c in enumerate(found, 1)]
        return *cards, [c["text"] for c in found], gr.Column(visible=True)

    def rewrite(variant: str, lyric: str, keep: str = "", n: int = 1, temperature: float = 0.8, top_k: int = 0,
                top_p: float = 1.0, seed: int | None = None, acrostic: str = "", rhyme: str = "off",
                repetition_penalty: float = 1.0, no_repeat_ngram: int = LOOP_NGRAM, line_lengths: str = "",
                scheme: str = "", keywords: str = "", keywords_in_order: bool = False, next_line: bool = False,
                request: gr.Request = None) -> list[str]:
        """Rewrite a lyric around the lines you keep: the kept lines stay exactly as they are, the others are written
        anew so that the song reads as one (a line before a kept line is chosen among $REWRITE_CANDIDATES candidates
        by how likely the model finds the kept line after it; a line after a kept line follows from it).

        Args:
            variant: the model's name, as the `models` tool gives it.
            lyric: the lyric, up to $TEXT characters, one line per line; blank lines (between verses) are kept.
            keep: the line numbers to keep, 1 for the first, e.g. "1,3"; empty to rewrite every line.
            n: how many rewrites, $REWRITES: rewrite i uses seed + i.
            temperature: 0 is greedy; 0.8 by default ($TEMPERATURE).
            top_k: sample only from the k likeliest characters; 0 turns this off.
            top_p: $TOP_P: 1 turns this off.
            seed: $SEED: the same seed gives the same rewrite; None for a new one each time.
            acrostic: characters that begin the lyric's lines, one each (藏头); empty for none.
            rhyme: "off", "auto", a 十三辙 group or one of its characters, or an English word: every line's rhyme.
            repetition_penalty: $REPETITION_PENALTY: 1 is off.
            no_repeat_ngram: $NO_REPEAT_NGRAM: never write the same run of this many characters twice (0 is off).
            line_lengths: the lyric's line lengths, e.g. "7,7,5,7" (line i of the lyric has the pattern's line i);
                empty for none.
            scheme: a rhyme scheme over the lyric's lines of words (blank lines are not counted), e.g. "AABB": a
                letter's rhyme is given ("A=江阳"), else that of its first line in the lyric, kept or written.
            keywords: up to $KEYWORDS words the lyric holds, each once (those the kept lines lack are written).
            keywords_in_order: the keywords in the order given.
            next_line: the next-line model of the same lyrics, where one is loaded, proposes lines too (half as many
                runs as the model's candidates), wherever no line form (lengths, scheme or rhyme, keywords,
                acrostic) is asked; the model weighs them all alike.

        Returns:
            the rewritten lyrics, one per rewrite.
        """
        variant_ = variant_of(variants, variant, request)
        lyric = string("Lyric", lyric, limits.TEXT).rstrip("\n")
        n = number("n", n, limits.REWRITES, whole=True)
        keep = string("Keep", keep, limits.LINES.high * 4) if not isinstance(keep, list) else keep
        _, options = form_options(variant_, 1, temperature, top_k, top_p, seed, 0, acrostic, rhyme,
                                  repetition_penalty, no_repeat_ngram, line_lengths, scheme, keywords,
                                  keywords_in_order)
        options.pop("lines")
        first = options.pop("seed")
        partner = variant_.partner(next_lines) if flag("Next line", next_line) else None
        try:
            return [variant_.rewrite(lyric, keep, dict(options, seed=None if first is None else first + i), partner)
                    for i in range(n)]
        except (ValueError, Busy) as e:
            raise refused(e) from None

    def rewrite_page(name, text, locked, n, temperature, top_k, top_p, seed, acrostic, rhyme, avoid_loops,
                     loop_length, repetition_penalty, line_lengths, scheme, keywords, in_order, from_next_line,
                     request: gr.Request):
        """Rewrite's view on the page: the lyric with its locked lines kept, or four rewrites to choose from."""
        if not (text or "").strip():
            raise refusal("Write a lyric first: then lock the lines you like and rewrite the others.")
        kept = sorted(locked or [])
        found = rewrite(name, text, ",".join(str(k) for k in kept), n, temperature, top_k, top_p, page_seed(seed),
                        acrostic, rhyme, repetition_penalty, loop_length if avoid_loops else 0, line_lengths, scheme,
                        keywords, in_order, from_next_line, request)
        return found, kept

    def rewritten(name, text, locked, temperature, top_k, top_p, seed, acrostic, rhyme, avoid_loops, loop_length,
                  repetition_penalty, line_lengths, scheme, keywords, in_order, from_next_line, request: gr.Request):
        [new], kept = rewrite_page(name, text, locked, 1, temperature, top_k, top_p, seed, acrostic, rhyme,
                                   avoid_loops, loop_length, repetition_penalty, line_lengths, scheme, keywords,
                                   in_order, from_next_line, request)
        return kept_html(new, kept), new, locks_for(new, kept)

    def rewritten_four(name, text, locked, temperature, top_k, top_p, seed, acrostic, rhyme, avoid_loops, loop_length,
                       repetition_penalty, line_lengths, scheme, keywords, in_order, from_next_line,
                       request: gr.Request):
        found, kept = rewrite_page(name, text, locked, PAGE_CANDIDATES, temperature, top_k, top_p, seed, acrostic,
                                   rhyme, avoid_loops, loop_length, repetition_penalty, line_lengths, scheme,
                                   keywords, in_order, from_next_line, request)
        return *[rewrite_card(k, new, kept) for k, new in enumerate(found, 1)], found, gr.Column(visible=True)

    def chose_rewrite(texts, k, locked):
        if k >= len(texts or []):
            raise refusal("That rewrite is gone: rewrite again.")
        return kept_html(texts[k], locked), texts[k], locks_for(texts[k], locked)

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
    with gr.Row(elem_id="song-form"):
        line_lengths = gr.Textbox(label="Line lengths (字数)", placeholder="7,7,5,7", max_lines=1, min_width=160,
                                  elem_id="line-lengths",
                                  info="a melody's pattern: characters a line (English: syllables)")
        scheme = gr.Textbox(label="Rhyme scheme", placeholder="AABB · ABAB · XAXA", max_lines=1, min_width=160,
                            elem_id="scheme", info="a letter per line, X free; give one: AABB A=江阳")
        keywords = gr.Textbox(label="Keywords", placeholder="雨, 回忆", max_lines=1, min_width=160, elem_id="keywords",
                              info=f"up to {limits.KEYWORDS} words the lyric must hold")
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
            in_order = gr.Checkbox(value=False, label="Keywords in order", info="as listed, first to last")
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
    song = gr.State("")  # the lyric as text: what Rewrite reads
    with gr.Column(visible=False, elem_id="cowrite") as cowrite:
        locks = gr.CheckboxGroup([], label="Lines to keep", elem_id="locks",
                                 info="lock the lines you like; rewriting writes the others anew around them")
        with gr.Row():
            again = gr.Button("Rewrite the others", variant="primary", min_width=160, elem_id="rewrite")
            again_many = gr.Button(f"Rewrite {PAGE_CANDIDATES}", min_width=160, elem_id="rewrite-4")
            from_next_line = gr.Checkbox(value=False, label="Draw on the next-line model", elem_id="from-next-line",
                                         visible=first is not None and first.partner(next_lines) is not None,
                                         info="its lines join the candidates where no line form is set")
    picks = gr.State([])
    choices, cards, follow = card_grid("**Candidates**, best first by the model's own mean log-probability (lower "
                                       "perplexity: the model found it more natural). Continue from the one you like.",
                                       "Continue from #{}", "candidates")
    rewrites = gr.State([])
    rewrite_choices, rewrite_cards, use = card_grid("**Rewrites** around the lines you kept (shaded). Use the one "
                                                    "you like.", "Use #{}", "rewrites")
    for index, (corpus, examples) in enumerate(EXAMPLES.items()):
        known = [e for e in examples if any(not v.model.vocab.unknown(e[0] + e[2] + e[6]) for v in variants.values())]
        if known:
            gr.Examples(known, inputs=[prefix, lines, acrostic, rhyme, line_lengths, scheme, keywords],
                        label=f"Examples · {corpus}", elem_id=f"examples-{index}")
    on_gpu = first is not None and first.model.device.type == "cuda"
    gr.Markdown(f"<small>Decoding on {'a GPU' if on_gpu else 'the CPU'}; also callable from Python "
                "with gradio_client and by AI agents over MCP (see “Use via API” below).</small>")

    def chosen(name, request: gr.Request):
        variant = models_for(variants, request).get(name)
        return (describe(variant) if variant else "", gr.Dropdown(choices=rhyme_choices(variant), value="off"),
                gr.Checkbox(visible=variant is not None and variant.partner(next_lines) is not None))

    def prefix_notice(name, text_, request: gr.Request):
        variant = models_for(variants, request).get(name)
        return "\n\n".join(f"⚠️ {html.escape(n)}" for n in prefix_notices(variant, text_ or ""))

    picker.change(chosen, picker, [info, rhyme, from_next_line], queue=False, api_visibility="private")
    gr.on([picker.change, prefix.change], prefix_notice, [picker, prefix], notice, queue=False,
          show_progress="hidden", api_visibility="private")
    form = [temperature, top_k, top_p, seed]
    shape = [acrostic, rhyme, avoid_loops, loop_length, repetition_penalty, line_lengths, scheme, keywords, in_order]
    inputs = [picker, prefix, length, *form, lines, *shape]
    limit = writing(decoding)
    private = dict(**limit, api_visibility="private")
    run = gr.on([go.click, prefix.submit], write, inputs, [lyric, song], trigger_mode="once", show_progress="hidden",
                **private)  # the growing text is the progress (and a Stop can race to "Error")
    run.then(lambda text: (locks_for(text, []), gr.Column(visible=bool(text.strip()))), song, [locks, cowrite],
             queue=False, api_visibility="private")
    many = go_many.click(write_candidates, inputs, [*cards, picks, choices], trigger_mode="once", **private)
    stop.click(None, cancels=[run, many])
    copy.click(None, js="() => navigator.clipboard.writeText(document.querySelector('#lyric .lyric').innerText)")
    for i, button in enumerate(follow):
        chosen = button.click(lambda p, texts, i=i: (p or "") + texts[i] if i < len(texts) else p, [prefix, picks],
                              prefix, queue=False, api_visibility="private")
        chosen.then(write, inputs, [lyric, song], show_progress="hidden", **private).then(
            lambda text: (locks_for(text, []), gr.Column(visible=True)), song, [locks, cowrite], queue=False,
            api_visibility="private")
        button.click(None, js=SHOW_LYRIC)  # the chosen candidate is continued up there, above the candidates
    rewriting = [picker, song, locks, *form, *shape, from_next_line]
    again.click(rewritten, rewriting, [lyric, song, locks], trigger_mode="once", **private)
    again_many.click(rewritten_four, rewriting, [*rewrite_cards, rewrites, rewrite_choices], trigger_mode="once",
                     **private)
    for i, button in enumerate(use):
        button.click(chose_rewrite, [rewrites, gr.State(i), locks], [lyric, song, locks], queue=False,
                     api_visibility="private")
        button.click(None, js=SHOW_LYRIC)
    gr.api(documented(generate), api_name="generate", **limit)
    gr.api(documented(candidates), api_name="candidates", **limit)
    gr.api(documented(rewrite, REWRITE_CANDIDATES=song_form.REWRITE_CANDIDATES), api_name="rewrite", **limit)
    return picker


def card_grid(heading: str, button: str, elem_id: str) -> tuple[gr.Column, list[gr.HTML], list[gr.Button]]:
    """A hidden column of PAGE_CANDIDATES cards under a heading, each with its button (button: its label, {} the
    card's number)."""
    with gr.Column(visible=False, elem_id=elem_id) as column:
        gr.Markdown(heading)
        with gr.Row():
            cards, buttons = [], []
            for i in range(PAGE_CANDIDATES):
                with gr.Column(min_width=200):
                    cards.append(gr.HTML(elem_classes="card"))
                    buttons.append(gr.Button(button.format(i + 1), size="sm"))
    return column, cards, buttons


def song_lines(text: str) -> list[str]:
    return (text or "").rstrip("\n").split("\n")


def locks_for(text: str, kept: list[int]) -> gr.CheckboxGroup:
    """A lock for each line of the lyric (its number, 1 for the first, is its value), those kept locked."""
    lines = song_lines(text)
    choices = [(f"{k} · {line}" if line.strip() else f"{k} · (blank)", k) for k, line in enumerate(lines, 1)]
    return gr.CheckboxGroup(choices=choices, value=[k for k in kept if k <= len(lines)])


def kept_html(text: str, kept: list[int]) -> str:
    """A rewritten lyric: its kept lines marked with a lock (CSS draws it, not an emoji: not every device has their
    font; nor is it text that Copy would take)."""
    return "<br>".join(f'<span class="kept" title="kept">{plain(line)}</span>' if k in kept else plain(line)
                       for k, line in enumerate(song_lines(text), 1))


def rewrite_card(rank: int, text: str, kept: list[int]) -> str:
    return f'<div class="cand"><b>#{rank}</b><div class="lyric">{kept_html(text, kept)}</div></div>'
