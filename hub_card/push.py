"""A trained folder as one model repo: its card written for the repo id, then exactly the Hub files committed."""
from pathlib import Path

from huggingface_hub import hf_hub_url

from charrnn.counts import BIGRAM_NAME
from charrnn.fusion import LANGUAGE_MODEL
from charrnn.lexicon import LEXICON_NAME
from charrnn.loading import REQUIRED_FILES, check_source

from .card import CARD_NAME, METRICS_NAME, load_metrics
from .curve import CURVE_NAME
from .next_line import HEATMAP_NAME
from .upload import Commit, check_repo_id
from .wheel import place_wheel
from .write import write_card

COUNT_FILES = (*REQUIRED_FILES, BIGRAM_NAME, LEXICON_NAME)
# a fused next-line model's character model is a model folder of its own, inside
MODEL_FILES = (*COUNT_FILES, METRICS_NAME, CARD_NAME, CURVE_NAME, HEATMAP_NAME,
               *(f"{LANGUAGE_MODEL}/{name}" for name in COUNT_FILES))


def model_commit(folder: str | Path, repo_id: str, revision: str = "main", private: bool = False,
                 wheel: str | Path | None = None) -> Commit:
    """Check folder, put the library's wheel in it (the one given, else built from this checkout), (re)write its card
    so that its install command and snippet name repo_id, and say what would be committed."""
    check_repo_id(repo_id)
    folder = Path(folder)
    check_source(str(folder.resolve()))  # config and weights present; the card loads the model, checking them further
    metrics = load_metrics(folder)
    wheel_name = place_wheel(folder, wheel)
    write_card(folder, repo_id, hf_hub_url(repo_id, wheel_name, revision=revision))  # the card and its curve
    cell = metrics["train_config"]["cell"]
    message = f"Upload {folder.name}: {cell}, held-out perplexity {metrics['val_ppl']:.1f} on {metrics['corpus']}"
    files = [name for name in MODEL_FILES if (folder / name).is_file()]  # the bigram and lexicon are newer; the heatmap and language_model/ next-line only
    files.append(wheel_name)
    return Commit(folder, files, repo_id, "model", message, revision, private)
