"""The app's settings, read from the environment once, at start, into one object: a bad value is a clear error
there, never at an import.

| variable | meaning | default |
|---|---|---|
| CHARRNN_MODELS | the models offered: Hub repo ids or folders, comma-separated | the lines of CHARRNN_MODELS_FILE |
| CHARRNN_MODELS_FILE | a file of sources, one a line, # comments; folders relative to it | models.txt beside app.py |
| CHARRNN_DECODING | loop: each model's decoding loop batches every listener; per-request: each decodes alone | per-request on ZeroGPU, else loop |
| CHARRNN_DECODERS | decoding processes the loops are dealt out to | one per core (one on a GPU) |
| CHARRNN_TRAINING | 1: models listed but not yet written are training; they join the page when written | off |
| CHARRNN_TRAININGS | visitors' trainings at once (the Train tab, /train); the others wait in line | one per two cores |
| CHARRNN_TRAINED_DIR | where visitors' trained models are kept (emptied at start) | charrnn-trained/<pid> in the temp dir (those of stopped servers deleted) |
"""
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from spaces.config import Config as SpacesConfig

DECODING_MODES = ("loop", "per-request")


class SettingsError(ValueError):
    """A setting the app cannot start with; the message names the variable and what it may be."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Settings:
    sources: list[str] = field(default_factory=list)
    decoding: str = "loop"
    decoders: int | None = None  # None: one per core (one on a GPU)
    training: bool = False
    device: torch.device = field(default_factory=default_device)
    trainings: int | None = None  # None: engine.training.default_slots()
    trained_root: Path | None = None  # None: a new folder in the temp dir, the server's own

    @classmethod
    def from_environ(cls, models_file: Path, environ: Mapping[str, str] = os.environ) -> "Settings":
        """The settings environ gives; models_file lists the sources unless CHARRNN_MODELS or CHARRNN_MODELS_FILE do."""
        decoding = environ.get("CHARRNN_DECODING", "per-request" if SpacesConfig.zero_gpu else "loop")
        if decoding not in DECODING_MODES:
            raise SettingsError(f"CHARRNN_DECODING must be loop or per-request, got {decoding!r}")
        decoders = environ.get("CHARRNN_DECODERS", "")
        if decoders and not (decoders.isdigit() and int(decoders) >= 1):
            raise SettingsError(f"CHARRNN_DECODERS must be a whole number of processes, 1 or more; got {decoders!r}")
        trainings = environ.get("CHARRNN_TRAININGS", "")
        if trainings and not (trainings.isdigit() and int(trainings) >= 1):
            raise SettingsError(f"CHARRNN_TRAININGS must be a whole number of trainings at once, 1 or more; got "
                                f"{trainings!r}")
        listed = environ.get("CHARRNN_MODELS")
        sources = model_sources(listed, Path(environ.get("CHARRNN_MODELS_FILE", models_file)))
        root = environ.get("CHARRNN_TRAINED_DIR")
        return cls(sources, decoding, int(decoders) if decoders else None, bool(environ.get("CHARRNN_TRAINING")),
                   trainings=int(trainings) if trainings else None, trained_root=Path(root) if root else None)


def model_sources(listed: str | None, models_file: Path) -> list[str]:
    """The sources listed (comma-separated), else those of models_file (one a line, # comments), else none. A folder
    named in a models file is found relative to that file, so the app works from any directory; a line is a folder
    when it names one, or a path under a folder beside the file (models/x while `make demo` still trains it)."""
    if listed is not None:
        return unique(s.strip() for s in listed.split(","))
    if not models_file.is_file():
        return []
    lines = [line.split("#", 1)[0].strip() for line in models_file.read_text(encoding="utf-8").splitlines()]
    root = models_file.parent
    return unique(str(root / line) if is_folder(root, line) else line for line in lines if line)


def is_folder(root: Path, line: str) -> bool:
    """A folder beside the models file, or one yet to be written in a folder there (`make demo` still training it)."""
    folder = root / line
    return folder.is_dir() or folder.parent != root and folder.parent.is_dir()


def unique(sources) -> list[str]:
    return list(dict.fromkeys(s for s in sources if s))
