"""The demo through its API, as gradio_client users (and the page) reach it: the app runs in-process on tiny models."""
import html
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client

import app
from conftest import cut, tiny_config
from training.train import train

ROOT = Path(__file__).resolve().parent.parent
LSTM = "Jay Chou lyrics · LSTM"
GRU = "The Time Machine · GRU"
SLOW = "Jay Chou lyrics · LSTM (slowed down)"
SLOW_DELAY = 0.01  # seconds per character: 1,000 characters would take 10 s


class CountingModel:
    """A model that sleeps before each character and counts the characters it has made: the server-side view."""

    def __init__(self, model, delay: float):
        self.model, self.delay, self.steps = model, delay, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def stream(self, *args, **kwargs):
        for char in self.model.stream(*args, **kwargs):
            time.sleep(self.delay)
            self.steps += 1
            yield char


def wait_until(condition, deadline: float = 30.0, message: str = "timed out"):
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, message
        time.sleep(0.01)


def finish(job, deadline: float = 30.0):
    """Wait for a job with a deadline (iterating a failed job hangs): returns it, done."""
    wait_until(job.done, deadline, "the request did not finish in time")
    return job


def warnings_of(job) -> list[str]:
    """The gr.Warning messages a finished job received (from the update queue its async iterator reads)."""
    updates = job.communicator.updates
    logs = [updates.get_nowait() for _ in range(updates.qsize())]
    return [html.unescape(u.log[0]) for u in logs if getattr(u, "log", None) and u.log[1] == "warning"]


@pytest.fixture(scope="session")
def english_model_dir(tmp_path_factory) -> Path:
    """A tiny GRU on the first 3,000 characters of The Time Machine (one epoch, a few seconds)."""
    root = tmp_path_factory.mktemp("english")
    corpus = root / "timemachine.txt"
    corpus.write_text(cut("timemachine.txt", 3000), encoding="utf-8")
    train(tiny_config(corpus, root / "timemachine-gru", cell="gru", epochs=1))
    return root / "timemachine-gru"


@pytest.fixture(scope="module")
def server(tiny_model_dir, english_model_dir):
    variants = app.load_variants([str(tiny_model_dir), str(english_model_dir)], app.DEVICE)
    variants[SLOW] = app.Variant("test", CountingModel(variants[LSTM].model, SLOW_DELAY), {})
    demo = app.build_demo(variants)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield SimpleNamespace(url=url, variants=variants)
    demo.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server.url, verbose=False)


def request(client, variant=LSTM, prefix="分开", length=50, temperature=1.0, top_k=0, top_p=1.0, seed=None):
    return finish(client.submit(variant, prefix, length, temperature, top_k, top_p, seed, api_name="/generate"))


def text_of(job) -> str:
    assert job.exception() is None, job.exception()
    return job.outputs()[-1]


def test_load_variants_names_them_and_skips_broken_sources(tiny_model_dir, tmp_path, caplog):
    broken = tmp_path / "jaychou-gru"
    broken.mkdir()
    variants = app.load_variants([str(tiny_model_dir), str(broken), "no/such-repo"], app.DEVICE)
    assert list(variants) == [LSTM]
    assert variants[LSTM].model.device.type == app.DEVICE.type
    skipped = caplog.text
    assert str(broken) in skipped and "no/such-repo" in skipped
    info = variants[LSTM].describe()
    assert "LSTM" in info and "M parameters" in info and "held-out perplexity" in info


def test_endpoint_signature(client):
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == [
        "variant", "prefix", "length", "temperature", "top_k", "top_p", "seed"]
    assert len(endpoint["returns"]) == 1


def test_streams_the_continuation_and_matches_the_library(client, server):
    job = request(client, prefix="分开", length=300, temperature=0.8, seed=1)
    updates = [out for out in job.outputs()]
    assert len(updates) > 1, "the text should arrive in several updates"
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(updates, updates[1:])), "each update extends"
    final = text_of(job)
    assert len(final) == 300
    assert final == server.variants[LSTM].model.generate("分开", 300, temperature=0.8, seed=1)  # no prefix in it


def test_seed_repeats_and_temperature_zero_is_greedy(client, server):
    first, again, other = (text_of(request(client, length=80, seed=s)) for s in (7, 7, 8))
    assert first == again and first != other
    greedy = text_of(request(client, length=40, temperature=0))
    assert greedy == server.variants[LSTM].model.generate("分开", 40, temperature=0)


def test_top_k_and_top_p_reach_the_model(client, server):
    job = request(client, length=60, top_k=5, top_p=0.9, seed=3)
    assert text_of(job) == server.variants[LSTM].model.generate("分开", 60, top_k=5, top_p=0.9, seed=3)


def test_cancel_stops_the_generator_on_the_server(client, server):
    model = server.variants[SLOW].model
    start = model.steps
    job = client.submit(SLOW, "分开", 1000, 1.0, 0, 1, None, api_name="/generate")
    wait_until(lambda: len(job.outputs()) >= 2 and model.steps - start >= 10, 15, "no streaming from the slow model")
    job.cancel()
    time.sleep(0.5)
    stopped = model.steps
    time.sleep(0.5)
    assert model.steps == stopped, "the server kept generating after the cancel"
    assert stopped - start < 500
    finish(job)
    assert len(text_of(request(client, length=20))) == 20, "the app serves requests after a cancel"


def test_empty_prefix_starts_from_a_line_start(client):
    assert len(text_of(request(client, prefix="", length=30))) == 30


def test_a_huge_prefix_is_cut_to_its_end_quickly(client, server):
    prefix = "分开" * 50_000
    started = time.monotonic()
    job = request(client, prefix=prefix, length=20, seed=5)
    assert text_of(job) == server.variants[LSTM].model.generate(prefix[-app.MAX_PREFIX:], 20, seed=5)
    assert any("100,000 characters" in w and f"last {app.MAX_PREFIX:,}" in w for w in warnings_of(job))
    assert time.monotonic() - started < 20


def test_unknown_emoji_and_control_characters_are_named_and_read_as_unk(client):
    job = request(client, prefix="分开😀\x07", length=25)
    assert len(text_of(job)) == 25
    [warning] = warnings_of(job)
    assert "<unk>" in warning and "“😀”" in warning and "U+0007" in warning


def test_unknown_characters_depend_on_the_variant(client):
    [warning] = warnings_of(request(client, variant=GRU, prefix="The 分开", length=10))
    assert "“分”" in warning and "“开”" in warning and "“T”" not in warning
    assert warnings_of(request(client, variant=GRU, prefix="The ", length=10)) == []


@pytest.mark.parametrize("field, value, message", [
    ("length", 0, "less than minimum value 1"),
    ("length", app.MAX_LENGTH + 1, f"greater than maximum value {app.MAX_LENGTH}"),
    ("temperature", -0.5, "less than minimum value 0"),
    ("temperature", 1e30, "greater than maximum value 2"),
    ("top_k", -3, "less than minimum value 0"),
    ("top_p", 0, "less than minimum value 0.01"),
    ("top_p", 1.5, "greater than maximum value 1"),
    ("seed", -1, "less than minimum value 0"),
    ("variant", "../../etc/passwd", "not in the list of choices"),
    ("variant", "gpt2", "not in the list of choices"),
    ("variant", str(ROOT / "models" / "jaychou-lstm"), "not in the list of choices"),
    ("variant", None, "Unknown model None"),
])
def test_bad_input_gets_a_clear_error(client, field, value, message):
    job = request(client, **{field: value})
    assert message in str(job.exception())


@pytest.mark.parametrize("position, label", [(2, "Length"), (3, "Temperature"), (4, "Top-k"), (5, "Top-p"),
                                             (6, "Seed")])
def test_nan_gets_a_clear_error(server, client, position, label):
    """NaN passes gradio's range checks; gradio_client cannot even send it, so this goes over plain HTTP."""
    data = [LSTM, "分开", 20, 1.0, 0, 1.0, None]
    data[position] = float("nan")
    posted = httpx.post(f"{server.url}gradio_api/call/generate", content=json.dumps({"data": data}),
                        headers={"content-type": "application/json"})
    event = posted.json()["event_id"]
    reply = httpx.get(f"{server.url}gradio_api/call/generate/{event}", timeout=20).text
    assert "event: error" in reply and f"{label} must be a finite number, got nan" in reply
    assert len(text_of(request(client, length=10))) == 10, "the app serves requests after a bad one"


def test_many_requests_at_once_all_complete(server, client):
    jobs = [client.submit(LSTM, "分开", 100, 1.0, 0, 1, k, api_name="/generate") for k in range(24)]
    for job in jobs:
        finish(job, 60)
    assert [len(text_of(job)) for job in jobs] == [100] * 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_without_models_starts_and_says_how_to_get_one(tmp_path):
    """`python app.py` as a user runs it: GRADIO_SERVER_PORT respected, no model, a page that explains."""
    port = free_port()
    env = {**os.environ, "CHARRNN_MODELS": str(tmp_path / "missing"), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1"}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: proc.poll() is not None or "Running on local URL" in log.read_text(), 90,
                   "the app did not start")
        assert proc.poll() is None, log.read_text()
        assert "make models" in httpx.get(url, timeout=10).text
        job = finish(Client(url, verbose=False).submit(None, "分开", 10, 1.0, 0, 1, None, api_name="/generate"))
        assert "make models" in str(job.exception())
        started = log.read_text()
        assert "skipping model" in started and "No model is available" in started and "Traceback" not in started
        assert "gradio.live" not in started
    finally:
        proc.terminate()
        proc.wait(10)
