"""The model card of a trained folder: Hub metadata as ModelCardData, the body rendered from model_card.md."""
import json
from pathlib import Path
from typing import NamedTuple

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from charrnn import CharRNN, ModelFileError
from charrnn.names import CELL_NAMES, CORPUS_NAMES, METRICS_NAME
from charrnn.rhyme import language_of

from .curve import CURVE_NAME

TEMPLATE = Path(__file__).with_name("model_card.md")
CARD_NAME = "README.md"
TEMPERATURES = (0.5, 0.8, 1.0)
SAMPLE_LENGTH = 120
SEED = 0
# Settings that say where files went, not how the model was trained.
PLUMBING = {"corpus", "out", "checkpoint", "resume", "progress", "sample_prefixes", "sample_length", "device"}


class Corpus(NamedTuple):
    language: str | None
    title: str
    tag: str
    about: str
    memorisation: str
    rights: str


CORPORA = {
    "jaychou": Corpus(
        "zh", CORPUS_NAMES["jaychou"], "lyrics",
        "the lyrics of Jay Chou's (周杰伦) songs in Mandarin Chinese, one lyric line per line",
        "Do not publish its output as your own lyrics: it may be someone else's.",
        "The training text is the lyrics of songs by Jay Chou and his lyricists. Those lyrics are copyrighted by "
        "their authors and publishers; they are not redistributed here, and this repository contains none of them "
        "(only weights, which can reproduce fragments, see above)."),
    "timemachine": Corpus(
        "en", CORPUS_NAMES["timemachine"], "prose",
        "*The Time Machine* by H. G. Wells (1895), English prose",
        "The novel is in the public domain, so repeating it does no harm, but it is not new writing either.",
        "The training text is *The Time Machine* by H. G. Wells, a public-domain novel (Project Gutenberg). "
        "It is not included in this repository."),
}


def with_article(name: str) -> str:
    """'an LSTM', 'a GRU': the article goes by how the first letter is spoken."""
    return f"{'an' if name[0] in 'AEFHILMNORSX' else 'a'} {name}"


def corpus_info(metrics: dict, model: CharRNN) -> Corpus:
    """What the card says about the training text: known corpora by file name, others from the vocabulary."""
    key = metrics["corpus"].split(".")[0].split("_")[0].lower()
    if key in CORPORA:
        return CORPORA[key]
    return Corpus(
        language_of(model.vocab.chars), metrics["corpus"], "text", f"the text of `{metrics['corpus']}`",
        "Check what the training text is before you publish its output.",
        f"The training text, `{metrics['corpus']}`, is not redistributed here; check its license before you share "
        "samples, which can reproduce it.")


def card_data(metrics: dict, model, corpus: Corpus, model_name: str, kind: str | None = None) -> ModelCardData:
    result = EvalResult(
        task_type="text-generation", task_name="Character-level language modelling",
        dataset_type=metrics["corpus"].split(".")[0], dataset_name=corpus.title,
        dataset_split=f"last {metrics['val_fraction']:.0%} of {metrics['corpus']}",
        metric_type="perplexity", metric_name="held-out perplexity per character",
        metric_value=round(metrics["val_ppl"], 2))
    declared = model.generate_model_card().data  # library, license, pipeline and tags: declared once, on the class
    tags = list(dict.fromkeys([*declared.tags, kind or model.cell, corpus.tag, "pytorch", "safetensors"]))
    return ModelCardData(**{**declared.to_dict(), "tags": tags}, language=corpus.language, model_name=model_name,
                         eval_results=[result])


def model_rows(model: CharRNN, cfg: dict) -> list[tuple[str, str]]:
    return [
        ("cell", f"{CELL_NAMES[model.cell]} (`{model.cell}`)"),
        ("input", "one-hot characters" if model.one_hot else f"embedding of size {cfg['embed_size']}"),
        ("hidden size", str(cfg["hidden_size"])),
        ("layers", str(cfg["num_layers"])),
        ("dropout", str(cfg["dropout"])),
        ("vocabulary", f"{len(model.vocab):,} characters, `<unk>` included; line breaks: {model.vocab.newlines}"),
        ("parameters", f"{model.num_parameters():,}"),
    ]


def training_rows(metrics: dict) -> list[tuple[str, str]]:
    cfg = metrics["train_config"]
    rows = [("corpus", f"`{metrics['corpus']}` ({metrics['corpus_chars']:,} characters)"),
            ("split", f"{metrics['train_chars']:,} training / {metrics['val_chars']:,} held-out characters")]
    rows += [(f"`{k}`", f"`{v}`") for k, v in cfg.items() if k not in PLUMBING]
    return rows + [
        ("epochs run / kept", f"{metrics['epochs']} / {metrics['best_epoch']}"),
        ("training time", f"{metrics['train_seconds']:.0f} s on {metrics['device']} "
                          f"({metrics['chars_per_second']:,} characters/s), torch {metrics['torch']}"),
    ]


def result_rows(metrics: dict) -> list[tuple[str, str]]:
    val = f"last {metrics['val_fraction']:.0%}"
    bigram, lexicon = metrics.get("count_weight", 0), metrics.get("lexicon_weight", 0)
    parts = f"{bigram:.0%} the bigram below" + (f", {lexicon:.0%} the lexicon" if lexicon else "")
    mixed = [(f"its network alone, held-out text (the model is {1 - bigram - lexicon:.0%} network, {parts})",
              f"{metrics['network_val_ppl']:.1f}")] if bigram or lexicon else []
    counted = [("bigram and lexicon mixed, held-out text (the share tuned on it)",
                f"{metrics['bigram_lexicon_ppl']:.1f}")] if "bigram_lexicon_ppl" in metrics else []
    return [(f"this model, held-out text ({val})", f"**{metrics['val_ppl']:.1f}**"), *mixed,
            (f"this model, training text (first {1 - metrics['val_fraction']:.0%})", f"{metrics['train_ppl']:.1f}"),
            ("bigram baseline, held-out text (interpolated, tuned on it)", f"{metrics['bigram_ppl']:.1f}"), *counted,
            ("unigram baseline, held-out text", f"{metrics['unigram_ppl']:.1f}")]


def teacher_of(metrics: dict) -> str | None:
    """The name of the model this one was distilled from, if any (a folder made by python -m training)."""
    teacher = metrics["train_config"].get("teacher")
    return teacher and Path(teacher).name


def sample_prefix(metrics: dict, model: CharRNN) -> str:
    return next((p for p in metrics.get("samples", {}) if p and not model.vocab.unknown(p)), "")


def load_metrics(folder: Path) -> dict:
    path = folder / METRICS_NAME
    if not path.is_file():
        raise ModelFileError(f"{folder} has no {METRICS_NAME}: write the card for a folder made by python -m training")
    return json.loads(path.read_text(encoding="utf-8"))


def build_card(folder: Path, metrics: dict, repo_id: str | None = None, install: str | None = None) -> ModelCard:
    """The card for folder; its snippet loads repo_id, else the folder itself, after `pip install` of install (the
    library's wheel in the repo), where given."""
    model = CharRNN.from_pretrained(folder)
    corpus = corpus_info(metrics, model)
    prefix = sample_prefix(metrics, model)
    samples = [(t, prefix + model.generate(prefix, SAMPLE_LENGTH, temperature=t, seed=SEED)) for t in TEMPERATURES]
    source, cell = repo_id or str(folder), CELL_NAMES[model.cell]
    return ModelCard.from_template(
        card_data(metrics, model, corpus, source.rstrip("/").split("/")[-1]), template_path=TEMPLATE,
        title=f"charrnn · {corpus.title} · {cell}", cell_name=cell, a_cell=with_article(cell), corpus=corpus, params=f"{model.num_parameters():,}", model_rows=model_rows(model, metrics["train_config"]),
        training_rows=training_rows(metrics), result_rows=result_rows(metrics), curve=CURVE_NAME,
        train_share=f"{1 - metrics['val_fraction']:.0%}", val_share=f"{metrics['val_fraction']:.0%}",
        sample_prefix=prefix, sample_length=SAMPLE_LENGTH, seed=SEED, samples=samples, source=source, install=install,
        train_chars=f"{metrics['train_chars']:,}", train_ppl=f"{metrics['train_ppl']:.1f}",
        val_ppl=f"{metrics['val_ppl']:.1f}", vocab_size=f"{len(model.vocab):,}", teacher=teacher_of(metrics),
        distill=f"{metrics['train_config'].get('distill', 0):.0%}", lexicon=model.lexicon and model.lexicon.source,
        lexicon_share=f"{model.lexicon_weight:.0%}")
