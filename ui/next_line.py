"""The Next line tab: type a line (or take the last line the Write tab wrote) and the encoder-decoder writes the
line after it, streaming, beside a heatmap of where it looked in the line it answers; Continue grows the song
line by line. Also the /next_line endpoint (gradio_client, MCP)."""
from collections.abc import Iterator
from html import escape

import gradio as gr

from charrnn import limits

from .common import (CONCURRENCY, DECODING, Variant, documented, number, page_seed, quoted, refusal, seed_box,
                     string)
from .lyric import plain, visible

NO_MODEL = ("**No next-line model is available.** `make models` trains `models/jaychou-next-line`; or list a "
            "next-line repo in `CHARRNN_MODELS`.")
CSS = """
.attention { overflow-x: auto; max-width: 100%; }
.attention table { border-collapse: separate; border-spacing: 2px; border: none; width: auto; }
.attention th, .attention td { border: none !important; }
.attention th { font-weight: normal; min-width: 1.5em; text-align: center; padding: 0; background: none; }
.attention td { width: 1.5em; height: 1.5em; border-radius: 3px;
                background: color-mix(in srgb, #f43f5e calc(var(--w) * 100%), transparent); }
.attention .caption { color: var(--body-text-color-subdued); font-size: .85rem; margin: .3em 0 0; }
"""
TAKE_LAST_LINE = """() => {
    const lines = (document.querySelector('#lyric .lyric')?.innerText || '').split('\\n').filter(l => l.trim());
    return lines.length ? lines[lines.length - 1] : '';
}"""


def attention_html(source: str, steps: list[tuple[str, list[float] | None]]) -> str:
    """Written characters (rows) against the characters of the line answered (columns), shaded by attention."""
    if not steps or steps[0][1] is None:
        return ""
    columns = source or "\n"
    head = "<tr><th></th>" + "".join(f"<th>{escape(visible(c))}</th>" for c in columns) + "</tr>"
    rows = "".join(f"<tr><th>{escape(visible(char))}</th>" + "".join(
        f'<td style="--w:{w:.3f}" title="{escape(visible(char))} → {escape(visible(c))}: {w:.0%}"></td>'
        for c, w in zip(columns, weights)) + "</tr>" for char, weights in steps)
    return (f'<div class="attention"><table>{head}{rows}</table><p class="caption">Attention: each written '
            f'character (row) against the line it answers (columns); darker is where the model looked (a fused '
            f'model: its cache, at the character it would copy).</p></div>')


def build(models: dict[str, Variant]) -> gr.Dropdown:
    """The next-line writer, inside the caller's Blocks."""

    def chosen(variant) -> Variant:
        if not models:
            raise refusal(NO_MODEL.replace("**", "").replace("`", ""))
        if not variant:
            return next(iter(models.values()))
        if variant not in models:
            raise refusal(f"Unknown next-line model {quoted(variant)}; choose one of: {', '.join(models)}.")
        return models[variant]

    def steps_of(variant, line, temperature, seed) -> tuple[str, Iterator]:
        """The line answered (as the model reads it) and the engine's steps writing the next."""
        writer = chosen(variant)
        line = string("Line", line, limits.LINE)
        temperature = number("Temperature", temperature, limits.TEMPERATURE)
        seed = number("Seed", seed, limits.SEED, whole=True, optional=True)
        return writer.model.source(line), writer.next_line(line, temperature, seed)

    def next_line(line: str, temperature: float = 0.8, seed: int | None = None, variant: str = "") -> Iterator[str]:
        """Write the line that follows a line of lyrics (an encoder-decoder with attention, fused with a character
        model where it ships one); streams the line so far.

        Args:
            line: the line to answer, up to $LINE characters (of several lines, the last non-empty one); empty means
                the start of a song.
            temperature: $TEMPERATURE; 0 is greedy.
            seed: the same seed gives the same line; empty for a random one.
            variant: the next-line model's name; empty for the first one.

        Returns:
            the next line, without its line break.
        """
        _, steps = steps_of(variant, line, temperature, seed)
        text = ""
        yield text
        for char, _ in steps:
            text += char
            yield text

    def song_html(lines: list[str]) -> str:
        return "".join(f'<div class="{"prefix" if k == 0 else ""}">{plain(line) or "&nbsp;"}</div>'
                       for k, line in enumerate(lines))

    def write(variant, line, temperature, seed, song, continuing):
        """The page's view: the song so far with the new line growing, and the heatmap growing with it."""
        if continuing and song:
            line = song[-1]
        source, steps = steps_of(variant, line, temperature, page_seed(seed))
        song = list(song) if continuing and song else [source]
        written, new = [], ""
        yield song_html(song + [new]), "", song
        for char, weights in steps:
            written.append((char, weights))
            new += char
            yield song_html(song + [new]), attention_html(source, written), song
        yield song_html(song + [new]), attention_html(source, written), song + [new]

    if not models:
        gr.Markdown(NO_MODEL)
    names = list(models)
    with gr.Row():
        line = gr.Textbox(label="A line", value="窗外的麻雀", max_lines=3, scale=3, elem_id="next-line-input",
                          placeholder="a line of lyrics; the model writes the one after it")
        with gr.Column(scale=2, min_width=240):
            picker = gr.Dropdown(names, value=names[0] if names else None, label="Next-line model",
                                 elem_id="next-line-model")
            with gr.Row():
                temperature = gr.Slider(*limits.TEMPERATURE, value=0.8, step=0.05, label="Temperature", min_width=140)
                seed = seed_box(min_width=100, elem_id="next-line-seed")
    with gr.Row():
        go = gr.Button("Write the next line", variant="primary", min_width=160)
        more = gr.Button("Continue", min_width=100)
        take = gr.Button("Take the Write tab's last line", min_width=160)
        stop = gr.Button("Stop", variant="stop", min_width=100)
    song = gr.State([])
    shown = gr.HTML("", html_template='<div class="lyric song">${value}</div>', elem_id="song")
    heatmap = gr.HTML(elem_id="attention")
    writing = dict(concurrency_limit=CONCURRENCY, concurrency_id=DECODING, api_visibility="private",
                   trigger_mode="once", show_progress="hidden")
    def start(*inputs):
        yield from write(*inputs, continuing=False)

    def go_on(*inputs):
        yield from write(*inputs, continuing=True)

    inputs, outputs = [picker, line, temperature, seed, song], [shown, heatmap, song]
    first = gr.on([go.click, line.submit], start, inputs, outputs, **writing)
    after = more.click(go_on, inputs, outputs, **writing)
    stop.click(None, cancels=[first, after])
    take.click(None, None, line, js=TAKE_LAST_LINE)
    gr.api(documented(next_line), api_name="next_line", concurrency_limit=CONCURRENCY, concurrency_id=DECODING)
    return picker
