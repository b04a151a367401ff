"""(Re)writing a trained folder's card: a character model's (card.py) or a next-line model's (next_line.py)."""
from pathlib import Path

from huggingface_hub import ModelCard

from charrnn.loading import is_next_line

from .card import CARD_NAME, build_card, load_metrics
from .curve import CURVE_NAME, write_curve
from .next_line import build_next_line_card


def write_card(folder: str | Path, repo_id: str | None = None, install: str | None = None) -> ModelCard:
    """(Re)write folder/README.md and the training curve it shows (install: see build_card)."""
    folder = Path(folder)
    metrics = load_metrics(folder)
    if is_next_line(str(folder)):
        card = build_next_line_card(folder, metrics, repo_id, install)
    else:
        card = build_card(folder, metrics, repo_id, install)
    write_curve(metrics, folder / CURVE_NAME)
    card.save(folder / CARD_NAME)
    return card
