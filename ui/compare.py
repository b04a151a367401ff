"""The Compare tab: one start, one seed, the same options for every model; all of them write side by side,
streaming together, each with its mean log-probability under itself. Also the /compare endpoint."""
import html
from collections.abc import Iterator

import gradio as gr

from charrnn import limits
from engine.catalog import side_by_side

from .common import CONCURRENCY, DECODING, Variant, documented, models_for, number, refusal, string, worded
from .lyric import plain, prefix_html

UPDATE_EVERY = 0.1


def card(name: str, start: str, text: str, mean_logprob: float | None, error: str) -> str:
    head = f"<b>{html.escape(name)}</b>"
    if error:
        return f'<div class="cand">{head}<div class="lyric">{html.escape(error)}</div></div>'
    score = f" · mean log-probability {mean_logprob:.2f}" if mean_logprob is not None else ""
    return (f'<div class="cand">{head}{score}<div class="lyric">{prefix_html(start.split(chr(10))[-1])}'
            f'{plain(text)}</div></div>')




def build(variants: dict[str, Variant], slots: int = 0) -> list[gr.HTML]:
    """The side-by-side writers, inside the caller's Blocks, with a card for each model and for `slots` in all
    (models still training get theirs when they arrive: see refresh); returns the cards."""

    def race(start, length, temperature, seed, lines, no_repeat_ngram, request) -> Iterator[list[tuple]]:
        """Every model writing the same start together, through the engine: per model, (name, its text so far, its
        mean log-probability under itself once it is done, why it could not write)."""
        if not variants:
            raise refusal("No model is available.")
        start = string("Start", start, limits.TEXT)[-limits.PREFIX:]
        options = dict(temperature=number("Temperature", temperature, limits.TEMPERATURE),
                       seed=number("Seed", seed, limits.SEED, whole=True),
                       lines=number("Lines", lines, limits.LINES, whole=True) or None,
                       no_repeat_ngram=number("No repeated n-gram", no_repeat_ngram, limits.NO_REPEAT_NGRAM, whole=True))
        length = number("Length", length, limits.LENGTH, whole=True)
        racing = models_for(variants, request)  # a model arriving meanwhile joins the next comparison
        for rows in side_by_side(racing, start, length, options, UPDATE_EVERY):
            yield [(name, text, done.mean_logprob if done else None, worded(error) if error else "")
                   for name, (text, done, error) in rows.items()]

    def compare(start: str, length: int = 120, temperature: float = 0.8, seed: int = 1, lines: int = 0,
                no_repeat_ngram: int = 4, request: gr.Request = None) -> Iterator[list[dict]]:
        """Every model continues the same start with the same seed and options, together; streams their texts so far.

        Args:
            start: the text every model continues, up to $TEXT characters (the last $PREFIX are read).
            length: the most characters each writes, $LENGTH.
            temperature: $TEMPERATURE; 0 is greedy.
            seed: $SEED: the same seed for every model.
            lines: $LINES: stop each after this many lines; 0 for no limit.
            no_repeat_ngram: $NO_REPEAT_NGRAM: never repeat a run of this many characters (0 is off).

        Returns:
            one dict per model: variant, text (the continuation so far), mean_logprob (under that model), error.
        """
        for rows in race(start, length, temperature, seed, lines, no_repeat_ngram, request):
            yield [dict(variant=name, text=text, mean_logprob=mean, error=error) for name, text, mean, error in rows]

    def write_all(start, length, temperature, seed, lines, avoid_loops, request: gr.Request):
        for rows in race(start, length, temperature, seed, lines, 4 if avoid_loops else 0, request):
            shown = [gr.HTML(card(name, start or "", *row), visible=True) for name, *row in rows[:len(cards)]]
            yield shown + [gr.skip()] * (len(cards) - len(shown))

    with gr.Row():
        start = gr.Textbox(label="Start", value="分开", max_lines=4, scale=3, placeholder="what every model continues")
        seed = gr.Number(1, label="Seed", minimum=limits.SEED.low, maximum=limits.SEED.high, precision=0, min_width=100)
    with gr.Row():
        length = gr.Slider(*limits.LENGTH, value=120, step=1, label="Characters each", min_width=200)
        temperature = gr.Slider(*limits.TEMPERATURE, value=0.8, step=0.05, label="Temperature (every model)", min_width=200)
        lines = gr.Slider(*limits.LINES, value=4, step=1, label="Line limit", info="0: none", min_width=160)
        avoid_loops = gr.Checkbox(value=True, label="Avoid loops", min_width=120)
    with gr.Row():
        go = gr.Button("Compare every model", variant="primary")
        stop = gr.Button("Stop", variant="stop")
    cards, names = [], list(variants)
    with gr.Row():
        for k in range(max(slots, len(names))):
            with gr.Column(min_width=220):  # side by side on a laptop, one under another on a phone
                cards.append(gr.HTML(card(names[k], "", "", None, "") if k < len(names) else "", visible=k < len(names),
                                     elem_classes="compare-card"))
    run = go.click(write_all, [start, length, temperature, seed, lines, avoid_loops], cards, api_visibility="private",
                   concurrency_limit=CONCURRENCY, concurrency_id=DECODING, trigger_mode="once", show_progress="hidden")
    stop.click(None, cancels=[run])
    gr.api(documented(compare), api_name="compare", concurrency_limit=CONCURRENCY, concurrency_id=DECODING)
    return cards


def refresh(variants: dict[str, Variant], cards: list[gr.HTML]) -> list:
    """The cards' updates once more models have arrived: a card each, the rest hidden."""
    names = list(variants)
    return [gr.HTML(card(names[k], "", "", None, ""), visible=True) if k < len(names) else gr.HTML(visible=False)
            for k in range(len(cards))]
