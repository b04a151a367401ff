"""Where a training run says how far it is, for whoever waits for its model (the demo's banner reads it)."""
from pathlib import Path

SUFFIX = ".progress.json"  # <folder>.progress.json while the folder's model trains


def progress_file(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder.with_name(folder.name + SUFFIX)
