"""The demo Space: app.py, the packages it imports (charrnn, ui), requirements, models.txt and a README, staged in one folder."""
import re
import shutil
from importlib.metadata import version
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData

from charrnn.names import base_name
from charrnn.loading import looks_local

from .upload import Commit, HubCardError, check_repo_id

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).with_name("space_card.md")
# ZeroGPU installs only the torch versions it documents (2.8 to 2.11); the project itself says torch>=2.8.
ZEROGPU_TORCH = "torch>=2.8,<2.12"
PYTHON_VERSION = "3.10"  # ZeroGPU's documented Python; the code needs 3.10 or later
HARDWARE = "zero-a10g"  # ZeroGPU; the models are small enough for cpu-basic too
PACKAGES = ("charrnn", "ui")  # what app.py imports from this project


def check_models(models: list[str]) -> list[str]:
    """Model repo ids for the Space: a local folder is no use there."""
    if not models:
        raise HubCardError("no models listed: give --models OWNER/NAME[,OWNER/NAME...]")
    for model in models:
        if looks_local(model):
            raise HubCardError(f"{model} is a local folder: push it with `python -m hub_card push` and list its repo id")
        check_repo_id(model)
    return models


def space_requirements() -> str:
    """The project's requirements.txt with torch held to ZeroGPU's range."""
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    is_torch = [re.split(r"[<>=!~;\[\s]", line, maxsplit=1)[0] == "torch" for line in lines]
    if not any(is_torch):
        raise HubCardError("requirements.txt has no torch line to pin for ZeroGPU")
    pinned = [f"{ZEROGPU_TORCH}  # ZeroGPU supports torch 2.8 to 2.11" if t else line for t, line in zip(is_torch, lines)]
    return "\n".join(pinned) + "\n"


def space_card(models: list[str]) -> SpaceCard:
    data = SpaceCardData(
        title="Char-RNN lyrics", sdk="gradio", sdk_version=version("gradio"), python_version=PYTHON_VERSION,
        app_file="app.py", license="mit", models=models, tags=["char-rnn", "text-generation", "lyrics"],
        emoji="🎤", colorFrom="indigo", colorTo="pink", pinned=False,
        short_description="Character-level RNN, GRU and LSTM lyrics writers",
        suggested_hardware=HARDWARE)
    return SpaceCard.from_template(data, template_path=TEMPLATE, models=[(m, base_name(m)) for m in models])


def build_space(dest: Path, models: list[str]) -> list[str]:
    """Write the Space's files into dest; returns their paths in the repo."""
    if not (ROOT / "app.py").is_file():
        raise HubCardError(f"no app.py at {ROOT}: the Space needs the demo app")
    shutil.copy2(ROOT / "app.py", dest / "app.py")
    for package in PACKAGES:
        (dest / package).mkdir()
        for source in sorted((ROOT / package).glob("*.py")):
            shutil.copy2(source, dest / package / source.name)
    (dest / "requirements.txt").write_text(space_requirements(), encoding="utf-8")
    (dest / "models.txt").write_text("".join(f"{m}\n" for m in models), encoding="utf-8")
    space_card(models).save(dest / "README.md")
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())


def space_commit(repo_id: str, models: list[str], staging: Path, private: bool = False) -> Commit:
    check_repo_id(repo_id)
    files = build_space(staging, check_models(models))
    return Commit(staging, files, repo_id, "space", f"Update the demo: {len(models)} charrnn models", private=private)
