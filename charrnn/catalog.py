"""The one place that says which variants the app offers: Hub repo ids or local folders, each with a readable name.

Sources, first match wins: the CHARRNN_MODELS environment variable (comma-separated), else the file named
by CHARRNN_MODELS_FILE (default: models.txt at the project root, one source per line, # comments).
A folder named in a models file is found relative to that file, so the app works from any directory; a line is a
folder when it names one, or a path under a folder beside the file (models/x while `make demo` still trains it).
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LIST = ROOT / "models.txt"
CORPUS_NAMES = {"jaychou": "Jay Chou lyrics", "timemachine": "The Time Machine"}
CELL_NAMES = {"rnn-scratch": "RNN (from scratch)", "rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
KIND_NAMES = {**CELL_NAMES, "next-line": "next line (encoder-decoder)"}
PROGRESS_SUFFIX = ".progress.json"  # <folder>.progress.json while the folder's model trains


def model_sources() -> list[str]:
    listed = os.environ.get("CHARRNN_MODELS")
    if listed is not None:
        return unique(s.strip() for s in listed.split(","))
    path = Path(os.environ.get("CHARRNN_MODELS_FILE", DEFAULT_LIST))
    if not path.is_file():
        return []
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return unique(str(path.parent / line) if is_folder(path.parent, line) else line for line in lines if line)


def is_folder(root: Path, line: str) -> bool:
    """A folder beside the models file, or one yet to be written in a folder there (`make demo` still training it)."""
    folder = root / line
    return folder.is_dir() or folder.parent != root and folder.parent.is_dir()


def progress_file(folder: str | Path) -> Path:
    """Where the trainer says how far it is while it trains folder (the demo's banner reads it)."""
    folder = Path(folder)
    return folder.with_name(folder.name + PROGRESS_SUFFIX)


def unique(sources) -> list[str]:
    return list(dict.fromkeys(s for s in sources if s))


def base_name(source: str) -> str:
    """'models/jaychou-lstm' or 'user/charrnn-jaychou-lstm' -> 'Jay Chou lyrics · LSTM'."""
    stem = source.rstrip("/").split("/")[-1].removeprefix("charrnn-")
    corpus, _, cell = stem.partition("-")
    if corpus in CORPUS_NAMES and cell in KIND_NAMES:
        return f"{CORPUS_NAMES[corpus]} · {KIND_NAMES[cell]}"
    return stem


def display_name(source: str, sources: list[str] | None = None) -> str:
    """The readable name of source, with the source itself added where another in the list shares the name."""
    sources = model_sources() if sources is None else sources
    name = base_name(source)
    if sum(base_name(s) == name for s in sources) > 1:
        return f"{name} ({source.rstrip('/')})"
    return name
