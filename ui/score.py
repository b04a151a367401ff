"""The Score tab: paste a lyric, see every model's fair perplexity on it, and where the chosen model was surprised
(shaded text, a plot of surprise along the text, the most surprising characters). Also the /score and /models
endpoints (gradio_client, MCP)."""
import html

import gradio as gr

from charrnn import limits
from engine.workers import cores

from .common import CONCURRENCY, Variant, documented, models_for, number, refusal, refused, string, variant_of
from .lyric import scored_html, surprise_svg, visible

TOP = 10
# Texts scored at once, in the web server's process: one a core keeps every core busy, and more at once would only
# hold more memory (each holds a chunk's distribution over the vocabulary) and wait longer.
SCORING = min(cores(), CONCURRENCY)  # a container may see more cores than its quota lets it use
TOPS = limits.Range(0, 100)  # the most surprising characters /score lists
TABLE = ('<table class="scores"><caption>Every model\'s fair perplexity on this text, best first (lower: the text '
         'was less surprising to it)</caption><thead><tr><th>model</th><th>perplexity</th>'
         '<th>bigram</th><th>vs<br>bigram</th></tr></thead><tbody>{rows}</tbody></table>'
         '<small>bigram: pairs of characters counted on the model\'s training text (an interpolated bigram), '
         'scored on this text by the same fair rule</small>')
EXAMPLES = ["窗外的麻雀\n在电线杆上多嘴\n你说这一句\n很有夏天的感觉", "天青色等烟雨\n而我在等你",
            "The Time Traveller (for so it will be convenient to speak of him)\nwas expounding a recondite matter to us."]


def figure(perplexity: float) -> str:
    """A perplexity as the table shows it: no decimals once they say nothing (and would widen a phone's table)."""
    return f"{perplexity:.1f}" if perplexity < 1000 else f"{perplexity:.0f}"


def bigram_perplexity(variant: Variant, text: str, context: str = "") -> float | None:
    """text under the bigram of the variant's training text, or None where its folder ships none."""
    return variant.bigram.score(text, context).perplexity if variant.bigram else None


def build(variants: dict[str, Variant]) -> gr.Dropdown:
    """The scoring endpoint, inside the caller's Blocks."""

    def score(variant: str, text: str, context: str = "", top: int = TOP, request: gr.Request = None) -> dict:
        """How likely the model named `variant` finds a text: its fair perplexity and the characters that surprised
        it most, each with what the model expected there instead.

        Args:
            variant: the model's name, as the `models` tool gives it.
            text: the text to score (up to $TEXT characters); a character the model does not know costs
                -log P(<unk>) + log 10000, so models with smaller vocabularies gain nothing.
            context: text before it, up to $TEXT characters, which primes the model and is not scored; empty means
                the start of a line.
            top: how many of the most surprising characters to list, $TOPS.

        Returns:
            perplexity (per character, lower is better), nll (total, natural log), count (characters scored),
            bigram_perplexity (the same text under a bigram counted on the model's training text; null where the
            model ships none), and surprising: a list of {position, line, column, char, prob, rank,
            expected: [[char, prob], ...]}.
        """
        chosen = variant_of(variants, variant, request)
        scored = string("Text", text, limits.TEXT)
        if not scored:
            raise refusal("Give some text to score.")
        context = string("Context", context, limits.TEXT)
        try:
            result = chosen.model.score(scored, context)
        except ValueError as e:
            raise refused(e) from None
        surprising = []
        for k in result.most_surprising(number("Top", top, TOPS, whole=True)):
            c, (line, column) = result.chars[k], result.line_column(k)
            surprising.append(dict(position=k, line=line, column=column, char=c.char, prob=c.prob, rank=c.rank,
                                   expected=[list(a) for a in c.alternatives]))
        return dict(perplexity=result.perplexity, nll=result.nll, count=result.count,
                    bigram_perplexity=bigram_perplexity(chosen, scored, context), surprising=surprising)

    def models(request: gr.Request = None) -> list[dict]:
        """The models this app offers: pass a `name` as the `variant` of the other tools.

        Returns:
            one dict per model: name, cell (rnn-scratch, rnn, gru or lstm), parameters, vocabulary (characters it
            knows), corpus (what it learnt from), held_out_perplexity and bigram_perplexity (lower is better).
        """
        return [dict(name=name, cell=v.model.cell, parameters=v.model.num_parameters(), vocabulary=len(v.model.vocab),
                     corpus=v.metrics.get("corpus"), held_out_perplexity=v.metrics.get("val_ppl"),
                     bigram_perplexity=v.metrics.get("bigram_ppl"))
                for name, v in models_for(variants, request).items()]

    def read(text_: str, name: str, request: gr.Request):
        """The page's view: the table of every model (the session's own too), then the chosen model's shaded text,
        plot and list."""
        listed_ = models_for(variants, request)
        chosen = variant_of(listed_, name).model
        lyric = string("Text", text_, limits.TEXT)
        if not lyric:
            raise refusal("Paste a lyric (or click an example) to score.")
        result = chosen.score(lyric)  # the chosen model's row reuses it: each model reads the text once
        rows = sorted((result.perplexity if other == name else variant.model.score(lyric, details=False).perplexity,
                       other, bigram_perplexity(variant, lyric)) for other, variant in listed_.items())
        table_ = "".join(f"<tr><td>{html.escape(other)}</td><td>{figure(ppl)}</td><td>{figure(bigram) if bigram else '–'}"
                         f"</td><td>{f'{ppl / bigram:.2f}x' if bigram else '–'}</td></tr>" for ppl, other, bigram in rows)
        surprising = ["| line:column | char | probability (rank) | expected instead |", "|---|---|---|---|"]
        for k in result.most_surprising(TOP):
            c, (line, column) = result.chars[k], result.line_column(k)
            expected = ", ".join(f"{visible(a)} {p:.1%}" for a, p in c.alternatives[:3])
            surprising.append(f"| {line}:{column} | {visible(c.char)} | {c.prob:.2g} ({c.rank:,}) | "
                              f"{expected} |")
        return (TABLE.format(rows=table_), scored_html(result.text, result.chars),
                surprise_svg(result.text, result.surprise()), "\n".join(surprising))

    names = list(variants)
    with gr.Row():
        lyric = gr.Textbox(label="A lyric to score", lines=6, max_lines=20, scale=3, placeholder="paste a lyric here")
        with gr.Column(scale=2, min_width=240):
            shade_by = gr.Dropdown(names, value=names[0] if names else None, label="Shade by",
                                   info="the model whose surprise the text shows")
            go = gr.Button("Score", variant="primary")
    gr.Examples([[e] for e in EXAMPLES], inputs=[lyric], label="Examples")
    table = gr.HTML(elem_id="score-table")
    shaded = gr.HTML("", html_template='<div class="lyric">${value}</div>', elem_id="scored")
    plot = gr.HTML(elem_id="surprise-plot")
    listed = gr.Markdown(elem_id="surprising")
    gr.on([go.click, shade_by.input], read, [lyric, shade_by], [table, shaded, plot, listed], api_visibility="private",
          concurrency_limit=SCORING, concurrency_id="scoring", trigger_mode="once")

    gr.api(documented(score, TOPS=TOPS), api_name="score", concurrency_limit=SCORING, concurrency_id="scoring")
    gr.api(models, api_name="models", queue=False)
    return shade_by
