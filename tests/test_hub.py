"""The Hub round trip over real HTTP: the folder `push` uploads, served by a local Hub (olah), loaded back by repo id
in fresh processes, then offline from the cache, and by the app; bad folders and repos; the Space's files."""
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hub_server import LocalHub, free_port
from huggingface_hub import SpaceCard
from packaging.specifiers import SpecifierSet

from charrnn import CharRNN, ModelFileError, NextLine
from charrnn.fusion import LANGUAGE_MODEL
from charrnn.names import base_name
from engine.catalog import display_name
from engine.settings import Settings, model_sources
from hub_card.__main__ import main
from hub_card.next_line import HEATMAP_NAME
from hub_card.push import MODEL_FILES, model_commit

ROOT = Path(__file__).resolve().parent.parent
REPO_ID = "org/charrnn-jaychou-lstm"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
WHEEL = f"charrnn-{VERSION}-py3-none-any.whl"
CHAR_MODEL_FILES = [name for name in MODEL_FILES if name != HEATMAP_NAME and not name.startswith(LANGUAGE_MODEL)] + [
    WHEEL]  # the heatmap and the character model it is fused with are a next-line model's
# Loads a repo in a fresh process (HF_ENDPOINT is read when huggingface_hub is imported) and saves what it got.
LOAD = """
import json, sys
import safetensors.torch
from charrnn import CharRNN, ModelFileError
model = CharRNN.from_pretrained(sys.argv[1], revision="main")
safetensors.torch.save_file(model.state_dict(), sys.argv[2] + ".safetensors")
try:
    CharRNN.from_pretrained("org/no-such-model", revision="main")
    missing = None
except ModelFileError as e:
    missing = str(e)
json.dump({"vocab": model.vocab.to_dict(), "missing": missing}, open(sys.argv[2] + ".json", "w"))
"""


def hub_env(endpoint: str, hf_home: Path, offline: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = LocalHub(tmp_path_factory.mktemp("hub")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pushed(hub, tiny_model_dir, tmp_path_factory) -> Path:
    """The exact files `push` would upload for REPO_ID, committed as branch main of that repo on the local Hub."""
    folder = tmp_path_factory.mktemp("push") / "jaychou-lstm"
    shutil.copytree(tiny_model_dir, folder)
    commit = model_commit(folder, REPO_ID)
    hub.add_model(REPO_ID, commit.folder, commit.files)
    return folder


def load_in_subprocess(env: dict, out: Path) -> tuple[dict, dict]:
    done = subprocess.run([sys.executable, "-c", LOAD, REPO_ID, str(out)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return safetensors.torch.load_file(f"{out}.safetensors"), json.loads(Path(f"{out}.json").read_text())


def assert_same_model(state: dict, vocab: dict, model: CharRNN) -> None:
    assert state.keys() == model.state_dict().keys()
    for key, tensor in model.state_dict().items():
        assert torch.equal(state[key], tensor), key
    assert vocab == model.vocab.to_dict()


def test_a_pushed_model_downloads_over_http_then_loads_offline_from_the_cache(hub, pushed, tmp_path):
    local = CharRNN.from_pretrained(pushed)
    hf_home = tmp_path / "hf_home"
    state, got = load_in_subprocess(hub_env(hub.endpoint, hf_home), tmp_path / "online")
    assert_same_model(state, got["vocab"], local)
    assert "no model repo 'org/no-such-model'" in got["missing"]
    assert list((hf_home / "hub").glob("models--org--charrnn-jaychou-lstm/snapshots/*/model.safetensors"))

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: only the cache can answer
    state, got = load_in_subprocess(hub_env(dead, hf_home, offline=True), tmp_path / "offline")
    assert_same_model(state, got["vocab"], local)
    assert "not in the local cache" in got["missing"]


def test_a_fused_next_line_model_downloads_with_its_character_model(hub, fused_dir, tmp_path):
    folder = tmp_path / "push" / "jaychou-next-line"
    shutil.copytree(fused_dir, folder)
    commit = model_commit(folder, "org/charrnn-jaychou-next-line")
    hub.add_model("org/charrnn-jaychou-next-line", commit.folder, commit.files)
    load = ("import sys; from charrnn import NextLine; m = NextLine.from_pretrained(sys.argv[1]); "
            "print(m.score('在电线杆上多嘴', context='窗外的麻雀').nll, m.next_line('分开', seed=2), sep='|')")
    hf_home = tmp_path / "hf_home"
    done = subprocess.run([sys.executable, "-c", load, "org/charrnn-jaychou-next-line"], capture_output=True,
                          text=True, timeout=120, env=hub_env(hub.endpoint, hf_home))
    assert done.returncode == 0, done.stderr
    local = NextLine.from_pretrained(folder)
    nll, line = done.stdout.strip().split("|")
    assert float(nll) == pytest.approx(local.score("在电线杆上多嘴", context="窗外的麻雀").nll, rel=1e-6)
    assert line == local.next_line("分开", seed=2)
    assert list((hf_home / "hub").glob("models--org--charrnn-jaychou-next-line/snapshots/*/language_model/"
                                       "lexicon.safetensors"))
    hub.add_model("org/charrnn-half-next-line", commit.folder,
                  [name for name in commit.files if not name.startswith(LANGUAGE_MODEL)])
    done = subprocess.run([sys.executable, "-c", load, "org/charrnn-half-next-line"], capture_output=True,
                          text=True, timeout=120, env=hub_env(hub.endpoint, hf_home))
    # A clear error, not a half-loaded model; the local Hub (olah) answers a missing file as a missing repo, where
    # huggingface.co says the file is missing ("has no language_model/config.json").
    assert done.returncode == 1 and "charrnn.errors.ModelFileError" in done.stderr, done.stderr


def test_the_hub_serves_exactly_the_pushed_files(hub, pushed):
    repo = hub.mirrors / "models" / REPO_ID
    assert sorted(p.name for p in repo.iterdir() if p.name != ".git") == sorted(CHAR_MODEL_FILES)
    for name in CHAR_MODEL_FILES:
        assert (repo / name).read_bytes() == (pushed / name).read_bytes()


def test_push_dry_run_lists_the_files_and_the_commit(pushed, capsys):
    assert main(["push", "--model", str(pushed), "--repo-id", REPO_ID, "--revision", "v1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"model repo: {REPO_ID}" in out and "revision: v1" in out and "commit message: Upload jaychou-lstm" in out
    listed = [line.split()[0] for line in out.split(f"files ({len(CHAR_MODEL_FILES)}):\n")[1].splitlines()]
    assert listed == CHAR_MODEL_FILES
    card = (pushed / "README.md").read_text(encoding="utf-8")
    assert 'from_pretrained("org/charrnn-jaychou-lstm")' in card
    assert f'pip install "https://huggingface.co/{REPO_ID}/resolve/v1/{WHEEL}"' in card  # the install comes first
    assert card.index("pip install") < card.index("from_pretrained")


def test_push_without_a_token_says_so(pushed, tmp_path):
    env = hub_env("http://127.0.0.1:9", tmp_path / "empty_home")  # no HF_TOKEN, no stored login
    done = subprocess.run([sys.executable, "-m", "hub_card", "push", "--model", str(pushed), "--repo-id", REPO_ID],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert "no Hugging Face token" in done.stderr and "HF_TOKEN" in done.stderr


@pytest.mark.parametrize("repo_id", ["not a repo", "a/b/c", "org/bad--name", "just-a-name"])
def test_push_refuses_an_invalid_repo_id(pushed, repo_id, capsys):
    assert main(["push", "--model", str(pushed), "--repo-id", repo_id, "--dry-run"]) == 2
    assert "not a valid Hub repo id" in capsys.readouterr().err


def broken_copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def test_push_refuses_a_folder_without_weights(tiny_model_dir, tmp_path, capsys):
    folder = broken_copy(tiny_model_dir, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    assert main(["push", "--model", str(folder), "--repo-id", REPO_ID, "--dry-run"]) == 2
    assert "model.safetensors missing" in capsys.readouterr().err


def test_a_missing_weights_file_is_named(tiny_model_dir, tmp_path):
    folder = broken_copy(tiny_model_dir, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="model.safetensors missing"):
        CharRNN.from_pretrained(folder)


def test_a_truncated_weights_file_is_named(tiny_model_dir, tmp_path):
    folder = broken_copy(tiny_model_dir, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        CharRNN.from_pretrained(folder)


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, **changes}), encoding="utf-8")


def test_a_config_whose_sizes_do_not_match_the_weights_is_named(tiny_model_dir, tmp_path):
    folder = broken_copy(tiny_model_dir, tmp_path / "m")
    edit_config(folder, hidden_size=48)
    with pytest.raises(ModelFileError, match=r"does not match its config.json.*rnn.weight_hh_l0 has shape"):
        CharRNN.from_pretrained(folder)


def test_a_vocabulary_of_the_wrong_size_is_named(tiny_model_dir, tmp_path):
    folder = broken_copy(tiny_model_dir, tmp_path / "m")
    vocab = json.loads((folder / "config.json").read_text(encoding="utf-8"))["vocab"]
    edit_config(folder, vocab={**vocab, "chars": vocab["chars"][:-1]})
    with pytest.raises(ModelFileError, match=rf"vocabulary of {len(vocab['chars'])}.*embed.weight has shape"):
        CharRNN.from_pretrained(folder)


SPACE_ID = "org/charrnn-lyrics"
SPACE_FILES = sorted(["README.md", "app.py", "models.txt", "requirements.txt", WHEEL])  # no package folders: the wheel


def test_space_dry_run_lists_only_the_app_files(capsys):
    models = f"{REPO_ID},org/charrnn-timemachine-lstm"
    assert main(["space", "--repo-id", SPACE_ID, "--models", models, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"space repo: {SPACE_ID}" in out and "revision: main" in out
    listed = [line.split()[0] for line in out.split(f"files ({len(SPACE_FILES)}):\n")[1].splitlines()]
    assert listed == SPACE_FILES


def test_the_space_card_models_and_requirements(tmp_path, capsys):
    models = [REPO_ID, "org/charrnn-timemachine-lstm"]
    assert main(["space", "--repo-id", SPACE_ID, "--models", ",".join(models), "--out", str(tmp_path / "s")]) == 0
    staged = tmp_path / "s"
    assert sorted(p.name for p in staged.iterdir()) == SPACE_FILES
    card = SpaceCard.load(staged / "README.md")
    data = card.data
    assert (data.sdk, data.sdk_version, data.app_file) == ("gradio", version("gradio"), "app.py")
    assert data.python_version == "3.10" and data.models == models
    assert data.suggested_hardware and data.emoji and data.colorFrom and data.title
    assert 0 < len(data.short_description) <= 60
    assert data.hf_oauth is True and data.hf_oauth_scopes == ["contribute-repos"]  # the Train tab's sign-in
    for endpoint in ("/generate", "/candidates", "/score", "/models", "/compare", "/next_line"):
        assert f"| `{endpoint}` |" in card.text  # every endpoint the app has, from the app itself
    assert "/gradio_api/mcp/" in card.text and "memorise" not in card.text
    assert (staged / "models.txt").read_text().split() == models
    requirements = (staged / "requirements.txt").read_text().splitlines()
    [torch_line] = [line for line in requirements if line.startswith("torch")]
    zerogpu = SpecifierSet(torch_line.split("#")[0].removeprefix("torch").strip())
    assert all(v in zerogpu for v in ("2.8.0", "2.11.0")) and not any(v in zerogpu for v in ("2.7.1", "2.12.0"))
    assert f"charrnn[app,train] @ https://huggingface.co/spaces/{SPACE_ID}/resolve/main/{WHEEL}" in requirements
    assert main(["space", "--repo-id", SPACE_ID, "--models", REPO_ID, "--out", str(staged)]) == 2
    assert "not an empty folder" in capsys.readouterr().err  # nothing staged before is overwritten


def test_space_refuses_local_folders(tiny_model_dir, capsys):
    assert main(["space", "--repo-id", "org/s", "--models", str(tiny_model_dir), "--dry-run"]) == 2
    assert "is a local folder" in capsys.readouterr().err


def test_catalog_reads_the_list_and_names_each_source_once(tiny_model_dir, tmp_path, monkeypatch):
    listing = tmp_path / "models.txt"
    (tmp_path / "models").mkdir()
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "jaychou-lstm")
    listing.write_text(f"# comment\nmodels/jaychou-lstm\n{REPO_ID}  # the same variant on the Hub\n{REPO_ID}\n")
    monkeypatch.chdir(ROOT.parent)  # a folder in the list is found relative to the list, not the working directory
    sources = Settings.from_environ(tmp_path / "unused.txt", {"CHARRNN_MODELS_FILE": str(listing)}).sources
    assert sources == model_sources(None, listing) == [str(tmp_path / "models" / "jaychou-lstm"), REPO_ID]
    assert base_name(sources[0]) == base_name(REPO_ID) == "Jay Chou lyrics · LSTM"
    names = [display_name(s, sources) for s in sources]
    assert len(set(names)) == 2 and all(n.startswith("Jay Chou lyrics · LSTM (") for n in names)
    listed = Settings.from_environ(listing, {"CHARRNN_MODELS": f" {REPO_ID} ,, org/charrnn-timemachine-gru "}).sources
    assert [display_name(s, listed) for s in listed] == ["Jay Chou lyrics · LSTM", "The Time Machine · GRU"]
    assert Settings.from_environ(tmp_path / "missing.txt", {}).sources == []


@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="needs HF_TOKEN with write access (uploads to the real Hub)")
def test_a_real_push_round_trip(pushed, tmp_path):
    script = """
import sys, uuid, torch
from huggingface_hub import HfApi
from charrnn import CharRNN
from hub_card.push import model_commit
api = HfApi()
repo_id = f"{api.whoami()['name']}/charrnn-test-{uuid.uuid4().hex[:8]}"
try:
    model_commit(sys.argv[1], repo_id, private=True).upload(api.token)
    remote, local = CharRNN.from_pretrained(repo_id), CharRNN.from_pretrained(sys.argv[1])
    assert all(torch.equal(a, b) for a, b in zip(remote.state_dict().values(), local.state_dict().values()))
finally:
    api.delete_repo(repo_id, missing_ok=True)
"""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(PYTHONPATH=str(ROOT), HF_HOME=str(tmp_path / "hf_home"))
    done = subprocess.run([sys.executable, "-c", script, str(pushed)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def wait_for(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the app exited"
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {seconds} s")


@pytest.mark.server
def test_the_app_offers_and_runs_a_model_from_the_hub(hub, pushed, tmp_path):
    if not (ROOT / "app.py").is_file():
        pytest.skip("app.py is not written yet")
    from gradio_client import Client

    port = free_port()
    env = hub_env(hub.endpoint, tmp_path / "hf_home")
    env.update(CHARRNN_MODELS=REPO_ID, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    log = (tmp_path / "app.log").open("wb")
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/", app)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        name = display_name(REPO_ID, [REPO_ID])
        text = client.predict(name, "分开", 30, 0.0, 0, 1.0, 0, api_name="/generate")  # loops avoided, as the page
        assert text == CharRNN.from_pretrained(pushed).generate("分开", 30, temperature=0.0, no_repeat_ngram=4)
    finally:
        app.terminate()
        app.wait(20)
    assert "loaded" in (tmp_path / "app.log").read_text(errors="replace")


# The library as someone outside this checkout gets it: a fresh venv with the CPU torch wheel (as `make setup`
# installs it first) and then only what the Hub serves. Each venv costs about a minute of installs.
LIBRARY_ROUND_TRIP = """
import json, sys
from charrnn import CharRNN
model = CharRNN.from_pretrained(sys.argv[1])
top = model.candidates("分开", 3, 20, seed=1)
score = model.score("窗外的麻雀")
try:
    import gradio
    app_extras = True
except ImportError:
    app_extras = False
print(json.dumps({"text": model.generate("分开", 20, seed=1), "candidates": [c.text for c in top],
                  "perplexity": score.perplexity, "gradio": app_extras, "module": __import__("charrnn").__file__}))
"""


def fresh_venv(path: Path) -> Path:
    """A new venv at path with only torch in it; returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    pip(path / "bin", "torch==2.13.0")
    return path / "bin"


def pip(bin_: Path, *args: str) -> None:
    done = subprocess.run([bin_ / "pip", "install", "-q", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def outside(env: dict) -> dict:
    """env with nothing of this checkout on the path."""
    return {k: v for k, v in env.items() if k != "PYTHONPATH"}


@pytest.mark.slow
def test_the_hub_alone_installs_the_library_and_its_model(hub, pushed, tmp_path):
    """The model card's own install command, from the local Hub endpoint, then from_pretrained(repo id), generate,
    candidates, score and the console script, in a venv that has no gradio and no checkout."""
    card = (hub.mirrors / "models" / REPO_ID / "README.md").read_text(encoding="utf-8")
    [url] = [line.split('"')[1] for line in card.splitlines() if line.startswith("pip install")]
    assert url == f"https://huggingface.co/{REPO_ID}/resolve/main/{WHEEL}"
    bin_ = fresh_venv(tmp_path / "venv")
    pip(bin_, url.replace("https://huggingface.co", hub.endpoint))
    env = outside(hub_env(hub.endpoint, tmp_path / "hf_home"))
    done = subprocess.run([bin_ / "python", "-c", LIBRARY_ROUND_TRIP, REPO_ID], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    local = CharRNN.from_pretrained(pushed)
    assert got["text"] == local.generate("分开", 20, seed=1)
    assert got["candidates"] == [c.text for c in local.candidates("分开", 3, 20, seed=1)]
    assert got["perplexity"] == pytest.approx(local.score("窗外的麻雀").perplexity, rel=1e-5)
    assert not got["gradio"] and str(tmp_path / "venv") in got["module"]
    script = subprocess.run([bin_ / "charrnn", "generate", "--model", REPO_ID, "--prefix", "分开", "--length", "20",
                             "--seed", "1", "--temperature", "1"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert script.returncode == 0, script.stderr
    assert script.stdout == "分开" + got["text"] + "\n"


@pytest.mark.slow
@pytest.mark.server
def test_the_staged_space_installs_and_serves_from_its_own_folder(hub, pushed, tmp_path):
    """`hub_card space --out` stages the Space; its requirements (torch aside: ZeroGPU's range) go into a fresh
    venv; its app.py starts from that folder alone and pulls its model from the local Hub endpoint."""
    from gradio_client import Client

    staged = tmp_path / "space"
    env = hub_env(hub.endpoint, tmp_path / "hf_home")
    done = subprocess.run([sys.executable, "-m", "hub_card", "space", "--repo-id", SPACE_ID, "--models", REPO_ID,
                           "--out", str(staged)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    val_ppl = json.loads((pushed / "metrics.json").read_text())["val_ppl"]
    assert f"| {val_ppl:.1f} |" in (staged / "README.md").read_text()  # the model's held-out figure, read from the Hub
    hub.add_model(SPACE_ID, staged, repo_type="space")  # what the upload would make the Space's repo
    requirements = [line for line in (staged / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("torch")]
    assert requirements == [f"charrnn[app,train] @ {hub.endpoint}/spaces/{SPACE_ID}/resolve/main/{WHEEL}"]
    (tmp_path / "rest.txt").write_text("\n".join(requirements) + "\n")
    bin_ = fresh_venv(tmp_path / "venv")
    pip(bin_, "-r", str(tmp_path / "rest.txt"))
    port = free_port()
    app_env = outside({**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)})
    log = (tmp_path / "space.log").open("wb")
    app = subprocess.Popen([bin_ / "python", "app.py"], cwd=staged, env=app_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/", app, 300)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        name = display_name(REPO_ID, [REPO_ID])
        text = client.predict(name, "分开", 30, 0.0, 0, 1.0, 0, api_name="/generate")
        local = CharRNN.from_pretrained(pushed)
        assert text == local.generate("分开", 30, temperature=0.0, no_repeat_ngram=4)
        scored = client.predict(name, "窗外的麻雀", "", 3, api_name="/score")
        assert scored["perplexity"] == pytest.approx(local.score("窗外的麻雀").perplexity, rel=1e-4)
    finally:
        app.terminate()
        app.wait(20)
