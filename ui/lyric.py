"""A lyric as the page shows it: the prefix set apart, then the continuation line by line, each generated
character shaded by how sure the model was, with what else it weighed (hover, or tap on a phone).

The HTML only ever grows at its end while a lyric streams, so gradio sends each update as an append."""
import math
from html import escape

from charrnn import Step

CSS = """
.lyric { font-size: 1.2rem; line-height: 2; overflow-wrap: anywhere; white-space: pre-wrap; min-height: 6em; padding: .5em .75em;
         border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg); }
.lyric .prefix { color: var(--body-text-color-subdued); border-bottom: 2px dotted var(--body-text-color-subdued); }
.lyric .c, .legend .c { --tone: #f43f5e; border-radius: 3px; cursor: help; outline: none;
            background: color-mix(in srgb, var(--tone) calc((1 - var(--sure)) * 70%), transparent); }
.lyric .forced, .legend .forced { --tone: #6366f1; background: color-mix(in srgb, var(--tone) 18%, transparent);
                                  font-weight: 600; }
.lyric .c:hover, .lyric .c:focus { box-shadow: 0 0 0 2px var(--tone); }
.lyric .c:hover::after, .lyric .c:focus::after {
    content: attr(data-tip); position: fixed; left: 12px; right: 12px; bottom: 12px; z-index: 50;
    padding: .5em .75em; border-radius: 8px; background: #1e293b; color: #f8fafc; font-size: 1rem;
    line-height: 1.5; white-space: pre-wrap; pointer-events: none; }
.cand .lyric { font-size: 1.05rem; min-height: 4em; }
.lyric .kept { background: color-mix(in srgb, #6366f1 12%, transparent); border-radius: 3px; }
.lyric .kept::before { content: ""; display: inline-block; width: .8em; height: .8em; margin-right: .3em;
                      vertical-align: -.05em; background: url("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16' fill='%236366f1'%3E%3Cpath d='M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7zm2 0h4V5a2 2 0 0 0-4 0z'/%3E%3C/svg%3E") no-repeat; }
.scores { width: 100%; border-collapse: collapse; overflow-wrap: anywhere; }
.scores caption { text-align: left; color: var(--body-text-color-subdued); padding-bottom: .3em; }
.scores td, .scores th { padding: .25em .5em; border-bottom: 1px solid var(--border-color-primary); text-align: right; }
.scores td:first-child, .scores th:first-child { text-align: left; }
.scores td + td, .scores th { white-space: nowrap; overflow-wrap: normal; }  /* a number or heading never breaks */
.surprise svg { width: 100%; height: 140px; }
.surprise .bits { fill: none; stroke: #f43f5e; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.surprise .line { stroke: var(--body-text-color-subdued); stroke-dasharray: 2 3; vector-effect: non-scaling-stroke; }
.surprise text { font-size: 11px; fill: var(--body-text-color-subdued); }
.legend { font-size: .85rem; color: var(--body-text-color-subdued); }
.legend .c { padding: 0 .3em; color: var(--body-text-color); white-space: nowrap; }
"""
LEGEND = ('<div class="legend">How sure the model was of each character it wrote: '
          '<span class="c" style="--sure:1">certain</span> <span class="c" style="--sure:.67">1 in 10</span> '
          '<span class="c" style="--sure:.33">1 in 100</span> <span class="c" style="--sure:0">1 in 1,000</span> '
          '<span class="c forced">set by the form</span>. Hover over (or tap) a character to see what else it '
          'weighed.</div>')


def sureness(prob: float) -> float:
    """0 (one chance in 1,000 or less) to 1 (certain), on a log scale: a character model is seldom sure."""
    return min(1.0, max(0.0, 1 + math.log10(max(prob, 1e-9)) / 3))


def percent(prob: float) -> str:
    return f"{prob:.0%}" if prob >= 0.01 else f"{prob:.1%}" if prob >= 0.001 else "<0.1%"


def visible(char: str) -> str:
    return {"\n": "↵", " ": "␣", "\u3000": "␣"}.get(char, char)


def plain(text: str) -> str:
    """Escaped text with its line breaks shown."""
    return escape(text).replace("\n", "<br>")


def prefix_html(prefix: str) -> str:
    return f'<span class="prefix" title="your prefix">{plain(prefix)}</span>' if prefix else ""


def step_html(step: Step) -> str:
    """One generated character, shaded by its probability; a line break is just a break."""
    if step.char == "\n":
        return "<br>"
    char = escape(step.char)
    if step.forced:
        return f'<span class="c forced" tabindex="0" data-tip="{char}: set by the form (acrostic)">{char}</span>'
    others = " · ".join(f"{escape(visible(c))} {percent(p)}" for c, p in step.alternatives)
    tip = f"{escape(visible(step.char))} {percent(step.prob)}" + (f" — also likely: {others}" if others else "")
    return f'<span class="c" style="--sure:{sureness(step.prob):.2f}" tabindex="0" data-tip="{tip}">{char}</span>'


def candidate_html(rank: int, prefix_tail: str, text: str, perplexity: float, mean_logprob: float) -> str:
    return (f'<div class="cand"><b>#{rank}</b> · perplexity {perplexity:.1f} · mean log-probability '
            f'{mean_logprob:.2f}<div class="lyric">{prefix_html(prefix_tail)}{plain(text)}</div></div>')


def scored_html(text: str, chars) -> str:
    """A scored text, each character shaded by how expected it was, with what the model expected instead."""
    pieces = []
    for c in chars:
        if c.char == "\n":
            pieces.append("<br>")
            continue
        expected = " · ".join(f"{escape(visible(a))} {percent(p)}" for a, p in c.alternatives)
        tip = f"{escape(visible(c.char))} {percent(c.prob)}, rank {c.rank:,} — expected: {expected}"
        pieces.append(f'<span class="c" style="--sure:{sureness(c.prob):.2f}" tabindex="0" data-tip="{tip}">'
                      f'{escape(c.char)}</span>')
    return "".join(pieces)


def surprise_svg(text: str, bits) -> str:
    """Bits of surprise per character along the text, a dotted mark where each line starts."""
    n, top = len(bits), max(1.0, float(max(bits)))
    points = " ".join(f"{k},{100 - 100 * b / top:.1f}" for k, b in enumerate(bits))
    starts = [k + 1 for k, c in enumerate(text[:-1]) if c == "\n"]
    marks = "".join(f'<line class="line" x1="{k}" x2="{k}" y1="0" y2="100"/>' for k in starts)
    return (f'<div class="surprise"><svg viewBox="0 0 {max(n - 1, 1)} 100" preserveAspectRatio="none" role="img" '
            f'aria-label="surprise in bits per character">{marks}<polyline class="bits" points="{points}"/></svg>'
            f'<small>surprise, bits per character (0 to {top:.0f}), along the text; dotted: line starts</small></div>')
