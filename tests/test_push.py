"""The Train tab's push to the Hub, through huggingface_hub's real client (create_repo, preupload, create_commit) to a
local endpoint, then CharRNN.from_pretrained(repo_id) from it; and the sentence each failure gives.

The endpoint is a test double (tests/hub_upload_server.py): the suite's olah serves downloads only, and no Hub can be
reached from here, so a small server speaking the Hub's create-repo, preupload and commit calls (every file "regular",
no LFS) and its file downloads stands in for it. Everything on this side of HTTP is the real code: ui.train.publish,
hub_card's commit, the card, the wheel, huggingface_hub's client and cache.
"""
import shutil
import time
from pathlib import Path

import gradio as gr
import pytest
from gradio.helpers import special_args
from hub_server import free_port
from hub_upload_server import LocalUploadHub
from huggingface_hub import constants
from starlette.requests import Request

import ui.train
from charrnn import CharRNN
from engine.training import Trained
from hub_card.wheel import build_wheel
from ui.train import build, publish

pytestmark = pytest.mark.slow  # builds the wheel, starts a server
PREFIX, LENGTH = "分开", 40
SAMPLING = dict(temperature=0.8, seed=7)


@pytest.fixture(scope="module")
def hub():
    server = LocalUploadHub().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The charrnn wheel, built from this checkout once (as library_wheel does, without its process-wide cache)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def online(monkeypatch, wheel):
    """Uploads allowed (conftest sets HF_HUB_OFFLINE; huggingface_hub reads it at import, then constants at each
    request), no machine's token, and the wheel above as the one a pushed model carries."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(ui.train, "library_wheel", lambda: wheel)


def use_endpoint(monkeypatch, endpoint: str) -> None:
    """HF_ENDPOINT as huggingface_hub would have read it at import: HfApi() and hf_hub_download's URLs use it."""
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def folder(tiny_model_dir, tmp_path) -> Path:
    """A trained folder of its own: a push writes its card and wheel into it."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "jaychou-lstm"))


def test_push_then_from_pretrained_by_repo_id(hub, folder, online, wheel, monkeypatch, tmp_path):
    # The endpoint is given to publish only (constants.ENDPOINT is still huggingface.co's): it reaches every call.
    start = len(hub.requests)
    said = publish(folder, "my-lyrics", token="good-token", endpoint=hub.endpoint)
    assert said == f"Pushed to [tester/my-lyrics]({hub.endpoint}/tester/my-lyrics)."
    repo = "/api/models/tester/my-lyrics"
    assert [path for method, path in hub.requests[start:] if method == "POST"] == [
        "/api/repos/create", "/api/validate-yaml", f"{repo}/preupload/main", f"{repo}/commit/main"]

    files = hub.files("tester/my-lyrics")
    assert {"model.safetensors", "config.json", "README.md", wheel.name} <= set(files)
    for name in files:
        assert files[name] == (folder / name).read_bytes(), name
    assert b'from_pretrained("tester/my-lyrics")' in files["README.md"]  # the card names the repo it went to

    use_endpoint(monkeypatch, hub.endpoint)
    remote = CharRNN.from_pretrained("tester/my-lyrics", cache_dir=tmp_path / "cache")
    assert ("GET", "/tester/my-lyrics/resolve/main/model.safetensors") in hub.requests
    local = CharRNN.from_pretrained(folder)
    assert remote.generate(PREFIX, LENGTH, **SAMPLING) == local.generate(PREFIX, LENGTH, **SAMPLING)

    # Pushed again: the Hub's 409 on create is passed over once this very repo is found to exist, and it commits.
    start = len(hub.requests)
    assert publish(folder, "my-lyrics", token="good-token", endpoint=hub.endpoint) == said
    assert [r for r in hub.requests[start:] if r[1].startswith(("/api/repos", repo))][:2] == [
        ("POST", "/api/repos/create"), ("GET", repo)]


@pytest.mark.parametrize("case, said", [
    ("no token", "Sign in with Hugging Face, paste a token with write access, or log this machine in"),
    ("unknown token", "The Hub did not accept this token"),
    ("read-only token", "This token may not create or write repos"),
    ("name held by a dataset", "'taken' is taken in your namespace by a repo of another type"),
    ("endpoint down", "Could not reach the Hub (ConnectError); the model is still here to download."),
])
def test_a_failed_push_says_why_and_keeps_the_model(case, said, hub, folder, online, monkeypatch):
    weights = (folder / "model.safetensors").read_bytes()
    name, token, endpoint = "refused", "good-token", hub.endpoint
    if case == "no token":
        monkeypatch.setattr(ui.train, "get_token", lambda: None)  # no sign-in, no box, no machine login
        token = None
    elif case == "unknown token":
        token = "revoked"
    elif case == "read-only token":
        token = "read-only"
    elif case == "name held by a dataset":
        hub.add_repo("tester/taken", "dataset")
        name = "taken"
    else:
        endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(gr.Error) as refused:
        publish(folder, name, token, endpoint)
    assert refused.value.message.startswith(said), refused.value.message
    assert ("model", f"tester/{name}") not in hub.repos
    assert (folder / "model.safetensors").read_bytes() == weights  # the trained model is still there to download


def test_push_with_the_sign_in_token(hub, folder, online, monkeypatch, tmp_path):
    """The Push button as Gradio calls it after a sign-in with Hugging Face: Gradio builds the gr.OAuthToken it hands
    `push` from the session, and `push` pushes with it (before the Token box). The sign-in itself is faked, only it:
    it needs a Space's OAuth app and huggingface.co, neither of which can run here, so the session holds what Gradio's
    /login/callback stores there after one."""
    use_endpoint(monkeypatch, hub.endpoint)  # push passes no endpoint: HF_ENDPOINT's
    trained = Trained(tmp_path / "trained", slots=1)
    name = trained.add("session-1", folder, "my-model")
    with gr.Blocks() as page:
        build({}, trained, gr.Dropdown([]), gr.Dropdown([]))  # the Write and Score tabs' model lists
    [push] = [f.fn for f in page.fns.values() if getattr(f.fn, "__name__", "") == "push"]

    signed_in = {"oauth_info": {"access_token": "good-token", "scope": "openid profile write-repos",
                                "expires_at": int(time.time()) + 3600, "userinfo": {"preferred_username": "tester"}}}
    request = gr.Request(Request({"type": "http", "headers": [], "session": signed_in}), session_hash="session-1")
    # The Token box holds a read-only token: the sign-in's comes first.
    arguments, *_ = special_args(push, [name, "signed-in-lyrics", "read-only"], request=request)
    oauth_token = arguments[3]
    assert isinstance(oauth_token, gr.OAuthToken) and oauth_token.token == "good-token"

    said = push(*arguments)
    assert said == f"Pushed to [tester/signed-in-lyrics]({hub.endpoint}/tester/signed-in-lyrics)."
    assert "model.safetensors" in hub.files("tester/signed-in-lyrics")

    # Signed out: no OAuthToken, and the Token box's read-only token is refused with its sentence.
    request = gr.Request(Request({"type": "http", "headers": [], "session": {}}), session_hash="session-1")
    arguments, *_ = special_args(push, [name, "signed-out-lyrics", "read-only"], request=request)
    assert arguments[3] is None
    with pytest.raises(gr.Error, match="may not create or write repos"):
        push(*arguments)
