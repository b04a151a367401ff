"""Reading a lyric with a model: the /score endpoint (gradio_client, MCP). The Score tab builds on it."""
import gradio as gr

from .common import CONCURRENCY, Variant, number, refusal, string, variant_of

MAX_SCORE = 100_000  # characters: a few seconds of CPU for one model
TOP = 10


def build(variants: dict[str, Variant]) -> None:
    """The scoring endpoint, inside the caller's Blocks."""

    def score(variant: str, text: str, context: str = "", top: int = TOP) -> dict:
        """How likely the model named `variant` finds a text: its fair perplexity and the characters that surprised
        it most, each with what the model expected there instead.

        Args:
            variant: the model's name, as the `models` tool gives it.
            text: the text to score (up to 100,000 characters); a character the model does not know costs
                -log P(<unk>) + log 10000, so models with smaller vocabularies gain nothing.
            context: text before it, which primes the model and is not scored; empty means the start of a line.
            top: how many of the most surprising characters to list, 0 to 100.

        Returns:
            perplexity (per character, lower is better), nll (total, natural log), count (characters scored), and
            surprising: a list of {position, line, column, char, prob, rank, expected: [[char, prob], ...]}.
        """
        model = variant_of(variants, variant).model
        scored = string("Text", text, MAX_SCORE)
        if not scored:
            raise refusal("Give some text to score.")
        try:
            result = model.score(scored, string("Context", context, MAX_SCORE))
        except ValueError as e:
            raise refusal(str(e)) from None
        surprising = []
        for k in result.most_surprising(number("Top", top, 0, 100, whole=True)):
            c = result.chars[k]
            line_start = result.text.rfind("\n", 0, k) + 1
            surprising.append(dict(position=k, line=result.text.count("\n", 0, k) + 1, column=k - line_start + 1,
                                   char=c.char, prob=c.prob, rank=c.rank, expected=[list(a) for a in c.alternatives]))
        return dict(perplexity=result.perplexity, nll=result.nll, count=result.count, surprising=surprising)

    def models() -> list[dict]:
        """The models this app offers: pass a `name` as the `variant` of the other tools.

        Returns:
            one dict per model: name, cell (rnn-scratch, rnn, gru or lstm), parameters, vocabulary (characters it
            knows), corpus (what it learnt from), held_out_perplexity and bigram_perplexity (lower is better).
        """
        return [dict(name=name, cell=v.model.cell, parameters=v.model.num_parameters(), vocabulary=len(v.model.vocab),
                     corpus=v.metrics.get("corpus"), held_out_perplexity=v.metrics.get("val_ppl"),
                     bigram_perplexity=v.metrics.get("bigram_ppl")) for name, v in variants.items()]

    gr.api(score, api_name="score", concurrency_limit=CONCURRENCY, concurrency_id="scoring")
    gr.api(models, api_name="models", queue=False)
