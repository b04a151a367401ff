"""The card of a next-line model: its held-out perplexity against the count baselines and, fused, against the
character model primed with the line (and the three context modes where bench.next_line measured them), how peaked
its attention is, and the attention heatmap of a real sample as a PNG."""
from pathlib import Path

from huggingface_hub import ModelCard
from matplotlib import font_manager
from matplotlib.figure import Figure

from charrnn import NextLine

from .card import SEED, card_data, corpus_info

TEMPLATE = Path(__file__).with_name("next_line_card.md")
HEATMAP_NAME = "attention.png"
SAMPLE_LINE = "窗外的麻雀"
CONTEXT_ABOUT = {
    "init": "the encoder's final states become the decoder's first state, and nothing more",
    "every-step": "the encoder's final states become the decoder's first state and an input at every step",
    "attention": "every step i gets its own context c_i = Σ_j a_ij h_j, the weights a_ij from the decoder's "
                 "previous state and encoder state j (additive attention, Bahdanau et al. 2015)",
}


def cjk_font() -> str | None:
    """A font with Chinese glyphs (Noto CJK from fonts-noto-cjk), or None where there is none."""
    return next((f.name for f in font_manager.fontManager.ttflist if "CJK" in f.name), None)


def write_heatmap(source: str, text: str, attention: list[list[float]], path: Path) -> Path:
    fig = Figure(figsize=(1.2 + 0.45 * len(source), 1.0 + 0.45 * len(text)), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(attention, cmap="Reds", vmin=0, aspect="equal")  # scaled to its largest weight: diffuse rows show too
    font = {"family": cjk_font() or "sans-serif", "size": 12}
    ax.set_xticks(range(len(source)), list(source), fontdict=font)
    ax.set_yticks(range(len(text)), list(text), fontdict=font)
    ax.set(xlabel="the line answered", ylabel="the line written")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    fig.savefig(path)
    return path


def comparison(metrics: dict, model: NextLine) -> list[dict]:
    """The rows of the card's table, each as training measured it on the held-out pairs: this model; fused, its
    fusion fitted on the other half of the pairs, the encoder-decoder alone and the character model primed with the
    line; the count baselines."""
    fused = model.fusion is not None
    size = f"{model.num_parameters():,}"
    language_size = f"{model.fusion.language_model.num_parameters():,}" if fused else ""
    rows = [{"model": "this model: the encoder-decoder fused with the character model and its cache" if fused
             else f"this model (context {model.context})",
             "params": f"{size} + {language_size}" if fused else size,
             "perplexity": metrics["val_ppl"]}]
    if fused:
        rows += [{"model": "the same, its shares and sharpness chosen on the other half of the pairs", "params": "",
                  "perplexity": metrics["cross_fitted_ppl"]},
                 {"model": "the encoder-decoder alone", "params": size, "perplexity": metrics["network_val_ppl"]},
                 {"model": "the character model primed with the line", "params": language_size,
                  "perplexity": metrics["primed_ppl"]}]
    return rows + [{"model": "bigram (interpolated, tuned on the held-out text)", "params": "",
                    "perplexity": metrics["bigram_ppl"]},
                   {"model": "unigram", "params": "", "perplexity": metrics["unigram_ppl"]}]


def attention_words(metrics: dict) -> dict:
    """The attention's mean entropy as the card words it, or nothing where it was not measured."""
    if "attention_entropy" not in metrics:
        return {}
    share = metrics["attention_entropy"] / metrics["uniform_entropy"]
    verdict = "it looks nearly everywhere alike" if share > 0.9 else "it looks at part of the line"
    decoder = metrics.get("decoder_attention_entropy")
    return dict(entropy=f"{metrics['attention_entropy']:.2f}", uniform=f"{metrics['uniform_entropy']:.2f}",
                peaked=f"{share:.0%}", verdict=verdict,
                decoder_entropy=f"{decoder:.2f}" if decoder is not None else None)


def fusion_words(model: NextLine) -> dict | None:
    """The fusion's shares and sharpness as the card words them (None: not fused)."""
    if model.fusion is None:
        return None
    shares = model.fusion.shares
    return dict(decoder=f"{shares.decoder:.0%}", language_model=f"{shares.language_model:.0%}",
                cache=f"{shares.cache:.0%}", sharpness=f"{model.cache_sharpness:g}",
                language_model_params=f"{model.fusion.language_model.num_parameters():,}")


def build_next_line_card(folder: Path, metrics: dict, repo_id: str | None = None,
                         install: str | None = None) -> ModelCard:
    model = NextLine.from_pretrained(folder)
    corpus = corpus_info(metrics, model)
    line = SAMPLE_LINE if not model.vocab.unknown(SAMPLE_LINE) else next(iter(metrics["samples"]), "")
    attends = model.attends
    written = model.next_line(line, temperature=0.8, seed=SEED, attention=attends)
    sample, attention = written if attends else (written, None)
    if attention and sample:
        write_heatmap(model.source(line), sample, attention, folder / HEATMAP_NAME)
    source = repo_id or str(folder)
    return ModelCard.from_template(
        card_data(metrics, model, corpus, source.rstrip("/").split("/")[-1], "next-line"), template_path=TEMPLATE,
        title=f"charrnn · {corpus.title} · next line ({model.context})", corpus=corpus, context=model.context,
        context_about=CONTEXT_ABOUT[model.context], params=f"{model.num_parameters():,}",
        context_modes=metrics.get("context_modes"), rows=comparison(metrics, model), bigram=metrics["bigram_ppl"],
        fusion=fusion_words(model),
        pairs=f"the {metrics['val_pairs']:,} line pairs" if "val_pairs" in metrics else "the line pairs",
        val_ppl=f"{metrics['val_ppl']:.1f}", **attention_words(metrics),
        train_ppl=f"{metrics['train_ppl']:.1f}", heatmap=HEATMAP_NAME, sample_line=line, sample=sample, seed=SEED,
        samples=list(metrics.get("samples", {}).items()), source=source, install=install,
        train_chars=f"{metrics['train_chars']:,}")
