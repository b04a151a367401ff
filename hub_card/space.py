"""The demo Space: app.py, the library's wheel it installs (charrnn[app]), models.txt and a card made from facts
(every endpoint of the app, its MCP address, each model's held-out figures), staged in one folder."""
import importlib.util
import json
import shutil
from importlib.metadata import version
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData, hf_hub_download, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError

from charrnn.loading import looks_local
from charrnn.names import METRICS_NAME, base_name

from .upload import Commit, HubCardError, check_repo_id
from .wheel import place_wheel

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).with_name("space_card.md")
# ZeroGPU installs only the torch versions it documents (2.8 to 2.11); the library itself says torch>=2.8.
ZEROGPU_TORCH = "torch>=2.8,<2.12"
PYTHON_VERSION = "3.10"  # ZeroGPU's documented Python; the code needs 3.10 or later
HARDWARE = "zero-a10g"  # ZeroGPU; the models are small enough for cpu-basic too


def check_models(models: list[str]) -> list[str]:
    """Model repo ids for the Space: a local folder is no use there."""
    if not models:
        raise HubCardError("no models listed: give --models OWNER/NAME[,OWNER/NAME...]")
    for model in models:
        if looks_local(model):
            raise HubCardError(f"{model} is a local folder: push it with `python -m hub_card push` and list its repo id")
        check_repo_id(model)
    return models


def space_requirements(wheel_url: str) -> str:
    """torch held to ZeroGPU's range, then the library with the app's and training's extras from the wheel the Space carries
    (a URL: the Space installs its requirements before the rest of its files are copied in)."""
    return (f"{ZEROGPU_TORCH}  # ZeroGPU supports torch 2.8 to 2.11\n"
            f"charrnn[app,train] @ {wheel_url}\n")  # train: the Train tab trains and writes cards


def endpoints() -> list[dict]:
    """The app's named API endpoints, from the app itself (built with no models): name, arguments, description."""
    spec = importlib.util.spec_from_file_location("charrnn_app", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo({}, {})
    described = {fn.api_name: " ".join((fn.fn.__doc__ or "").split("\n\n")[0].split()) for fn in demo.fns.values()}
    named = demo.get_api_info()["named_endpoints"]
    return [dict(name=name, arguments=", ".join(p["parameter_name"] for p in info["parameters"]),
                 about=described.get(name.lstrip("/"), "")) for name, info in named.items()]


def held_out(model: str) -> dict:
    """A model repo's measured figures (its metrics.json), or {} where they cannot be read now."""
    try:
        with open(hf_hub_download(model, METRICS_NAME, revision="main"), encoding="utf-8") as f:
            return json.load(f)
    except (HfHubHTTPError, OSError, ValueError) as e:
        print(f"note: no figures for {model} ({type(e).__name__}); its card row says so")
        return {}


def space_card(models: list[str]) -> SpaceCard:
    data = SpaceCardData(
        title="Char-RNN lyrics", sdk="gradio", sdk_version=version("gradio"), python_version=PYTHON_VERSION,
        app_file="app.py", license="mit", models=models, tags=["char-rnn", "text-generation", "lyrics", "mcp-server"],
        emoji="🎤", colorFrom="indigo", colorTo="pink", pinned=False,
        # "Sign in with Hugging Face" in the Train tab: contribute-repos lets the Space create the visitor's model
        # repos and write to those, and nothing else of theirs (docs/design.md)
        hf_oauth=True, hf_oauth_scopes=["contribute-repos"],
        short_description="Character-level RNN, GRU and LSTM lyrics writers",
        suggested_hardware=HARDWARE)
    figures = [(m, base_name(m), held_out(m)) for m in models]
    return SpaceCard.from_template(data, template_path=TEMPLATE, models=figures, endpoints=endpoints())


def build_space(dest: Path, space_id: str, models: list[str], wheel: str | Path | None = None) -> list[str]:
    """Write the Space's files into dest; returns their paths in the repo."""
    if not (ROOT / "app.py").is_file():
        raise HubCardError(f"no app.py at {ROOT}: the Space needs the demo app")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "app.py", dest / "app.py")
    wheel_name = place_wheel(dest, wheel)
    (dest / "requirements.txt").write_text(space_requirements(hf_hub_url(space_id, wheel_name, repo_type="space")),
                                           encoding="utf-8")
    (dest / "models.txt").write_text("".join(f"{m}\n" for m in models), encoding="utf-8")
    space_card(models).save(dest / "README.md")
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())


def space_commit(repo_id: str, models: list[str], staging: Path, private: bool = False,
                 wheel: str | Path | None = None) -> Commit:
    check_repo_id(repo_id)
    files = build_space(staging, repo_id, check_models(models), wheel)
    return Commit(staging, files, repo_id, "space", f"Update the demo: {len(models)} charrnn models", private=private)
