"""The demo through its API, as gradio_client users (and the page) reach it: the app runs in-process on tiny models."""
import html
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import httpx
import pytest
from gradio_client import Client

import app
from charrnn import limits
from charrnn.form import Options
from charrnn.rhyme import Chinese
from conftest import cpu_ticks, cpu_used, loop_stream, pieces_text
from engine.catalog import Variant, load_models
from engine.settings import Settings
from ui.common import describe, page_seed
from ui.generate import LOOP_NGRAM

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
LSTM = "Jay Chou lyrics · LSTM"
GRU = "The Time Machine · GRU"
SLOW = "Jay Chou lyrics · LSTM (slowed down)"
NEXT_LINE = "Jay Chou lyrics · next line (encoder-decoder)"
FUSED = "jaychou-next-line-fused"  # of the LSTM's vocabulary: the one its rewrites draw on
SLOW_DELAY = 0.01  # seconds per character: 1,000 characters would take 10 s


class CountingModel:
    """A model that sleeps before each character and counts the characters it has made: the server-side view."""

    def __init__(self, model, delay: float):
        self.model, self.delay, self.steps = model, delay, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def stream(self, *args, **kwargs):
        return self.slowly(self.model.stream(*args, **kwargs))  # bad options raise at once, as the model's own

    def slowly(self, chars):
        while True:
            try:
                char = next(chars)
            except StopIteration as end:
                return end.value  # the Candidate
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


@pytest.fixture(scope="module")
def server(tiny_model_dir, english_model_dir, next_line_dir, fused_dir):
    variants, next_lines = load_models([str(tiny_model_dir), str(english_model_dir), str(next_line_dir),
                                        str(fused_dir)], Settings())
    variants[SLOW] = Variant("test", CountingModel(variants[LSTM].model, SLOW_DELAY), {})
    assert list(next_lines) == [NEXT_LINE, FUSED] and NEXT_LINE not in variants, "each kind of model in its own list"
    demo = app.build_demo(variants, next_lines)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield SimpleNamespace(url=url, variants=variants, next_lines=next_lines, demo=demo)
    demo.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server.url, verbose=False)


def request(client, variant=LSTM, prefix="分开", length=50, temperature=1.0, top_k=0, top_p=1.0, seed=None, **form):
    """/generate with the form options off unless given (the endpoint's own default avoids loops)."""
    form = {"no_repeat_ngram": 0, **form}
    return finish(client.submit(variant, prefix, length, temperature, top_k, top_p, seed, **form,
                                api_name="/generate"))


def text_of(job) -> str:
    assert job.exception() is None, job.exception()
    return job.outputs()[-1]


def test_load_variants_names_them_and_skips_broken_sources(tiny_model_dir, tmp_path, caplog):
    broken = tmp_path / "jaychou-gru"
    broken.mkdir()
    variants = load_models([str(tiny_model_dir), str(broken), "no/such-repo"], Settings())[0]
    assert list(variants) == [LSTM]
    assert variants[LSTM].model.device.type == Settings().device.type
    skipped = caplog.text
    assert str(broken) in skipped and "no/such-repo" in skipped
    info = describe(variants[LSTM])
    assert "LSTM" in info and "M parameters" in info and "held-out perplexity" in info


def test_endpoint_signatures(client):
    """/generate keeps its first seven parameters; every one after the prefix has a default; page-only
    handlers stay out of the API."""
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/generate", "/candidates", "/rewrite", "/score", "/models", "/compare", "/next_line"}
    form = ["lines", "acrostic", "rhyme", "repetition_penalty", "no_repeat_ngram", "line_lengths", "scheme", "keywords",
            "keywords_in_order"]
    generate = endpoints["/generate"]["parameters"]
    assert [p["parameter_name"] for p in generate] == [
        "variant", "prefix", "length", "temperature", "top_k", "top_p", "seed", *form]
    assert [p["parameter_has_default"] for p in generate] == [False, False] + [True] * 14
    candidates = endpoints["/candidates"]["parameters"]
    assert [p["parameter_name"] for p in candidates] == [
        "variant", "prefix", "n", "length", "temperature", "top_k", "top_p", "seed", *form]
    assert len(endpoints["/generate"]["returns"]) == 1


def test_variant_and_prefix_are_enough(client):
    """The page's defaults: 200 characters at most, temperature 0.8, loops avoided."""
    text = client.predict(LSTM, "分开", api_name="/generate")
    assert 0 < len(text) <= 200
    grams = [text[i:i + LOOP_NGRAM] for i in range(len(text) - LOOP_NGRAM + 1)]
    assert len(set(g for g in grams if not g.endswith("\n"))) == len([g for g in grams if not g.endswith("\n")])


def test_the_form_options_reach_the_library(client, server):
    form = dict(lines=4, acrostic="我你", rhyme="auto", repetition_penalty=1.3, no_repeat_ngram=3)
    text = text_of(request(client, length=300, temperature=0.8, top_p=0.9, seed=11, **form))
    assert text == server.variants[LSTM].model.generate("分开", 300, 0.8, None, 0.9, 11, **form)
    lines = text.split("\n")
    assert text.startswith("\n") and text.count("\n") == 5 and [x[0] for x in lines[1:3]] == ["我", "你"]
    assert len({Chinese().key(x) for x in lines[1:-1]}) == 1, "the lines after the first should rhyme with it"


def test_candidates_are_ranked_and_match_the_library(client, server):
    found = client.predict(LSTM, "分开", 3, 80, 0.9, 0, 1.0, 5, 2, api_name="/candidates")
    expected = server.variants[LSTM].model.candidates("分开", 3, 80, 0.9, seed=5, lines=2, no_repeat_ngram=LOOP_NGRAM)
    assert [c["text"] for c in found] == [c.text for c in expected]
    assert [c["mean_logprob"] for c in found] == sorted((c["mean_logprob"] for c in found), reverse=True)
    for c in found:
        assert c["text"].count("\n") == 2
        assert c["perplexity"] == pytest.approx(math.exp(-c["logprob"] / len(c["text"])))


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
    job = client.submit(SLOW, "分开", 1000, 1.0, 0, 1, None, api_name="/generate")  # positional, as before
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
    assert text_of(job) == server.variants[LSTM].model.generate(prefix[-limits.PREFIX:], 20, seed=5)
    assert any("100,000 characters" in w and f"last {limits.PREFIX:,}" in w for w in warnings_of(job))
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
    ("length", 0, "Length must be from 1 to 1,000, got 0"),
    ("length", limits.LENGTH.high + 1, "Length must be from 1 to 1,000"),
    ("length", "abc", "Length must be a finite number, got 'abc'"),
    ("length", 2.5, "Length must be a whole number, got 2.5"),
    ("temperature", -0.5, "Temperature must be from 0 to 2"),
    ("temperature", 1e30, "Temperature must be from 0 to 2"),
    ("top_k", -3, "Top-k must be from 0"),
    ("top_p", 0, "Top-p must be from 0.01 to 1"),
    ("top_p", 1.5, "Top-p must be from 0.01 to 1"),
    ("seed", -1, "Seed must be from 0"),
    ("seed", "7", "Seed must be a finite number"),
    ("lines", -1, "Lines must be from 0 to 100"),
    ("lines", 101, "Lines must be from 0 to 100"),
    ("acrostic", "我😀", "Acrostic has characters this model does not know (“😀”): choose others, or another model."),
    ("acrostic", "分" * 51, "Acrostic may have at most 50 characters"),
    ("acrostic", ["分"], "Acrostic must be text"),
    ("rhyme", "xyz", "Rhyme must be 'auto', a rhyme group"),
    ("repetition_penalty", 0.5, "Repetition penalty must be from 1 to 3"),
    ("no_repeat_ngram", 13, "No repeated n-gram must be from 0 to 12"),
    ("prefix", 123, "Prefix must be text"),
    ("variant", "../../etc/passwd", "Unknown model '../../etc/passwd'"),
    ("variant", "gpt2", "Unknown model 'gpt2'"),
    ("variant", str(ROOT / "models" / "jaychou-lstm"), "Unknown model"),
    ("variant", None, "Unknown model None"),
    ("line_lengths", "7,0", "Line lengths must be whole numbers from 1 to 50"),
    ("line_lengths", "七", "Line lengths must be whole numbers from 1 to 50"),
    ("line_lengths", 7, "Line lengths must be text"),
    ("line_lengths", "7, " * 200, "Line lengths may have at most 400 characters"),
    ("scheme", "AB1", "Rhyme scheme must be letters A to Z"),
    ("scheme", "AB C=江阳", "C has a rhyme but no line"),
    ("keywords", "龘", "Keywords has characters this model does not know (“龘”)"),
    ("keywords", "一,二,三,四,五,六", "Keywords must be at most 5 words"),
    ("keywords_in_order", "yes", "Keywords in order must be true or false"),
])
def test_bad_input_gets_a_clear_error(client, field, value, message):
    job = request(client, **{field: value})
    assert message in str(job.exception())


def test_a_form_that_does_not_fit_the_length_is_refused(client):
    assert "Length: 5 is too short for the form asked: make it at least" in str(request(client, length=5,
                                                                                        lines=4).exception())
    assert "Lines: 1 is too few for the acrostic (a line for each character): make it at least 2." in str(
        request(client, length=50, lines=1, acrostic="我你").exception())


@pytest.mark.parametrize("n, message", [(0, "n must be from 1 to 16"), (17, "n must be from 1 to 16"),
                                        ("4", "n must be a finite number")])
def test_bad_candidate_counts_are_refused(client, n, message):
    job = finish(client.submit(LSTM, "分开", n, api_name="/candidates"))
    assert message in str(job.exception())


@pytest.mark.parametrize("position, label", [(2, "Length"), (3, "Temperature"), (4, "Top-k"), (5, "Top-p"),
                                             (6, "Seed"), (7, "Lines"), (10, "Repetition penalty")])
def test_nan_gets_a_clear_error(server, client, position, label):
    """gradio_client cannot even send NaN, so this goes over plain HTTP."""
    data = [LSTM, "分开", 20, 1.0, 0, 1.0, None, 0, "", "off", 1.0, 0]
    data[position] = float("nan")
    posted = httpx.post(f"{server.url}gradio_api/call/generate", content=json.dumps({"data": data}),
                        headers={"content-type": "application/json"})
    event = posted.json()["event_id"]
    reply = httpx.get(f"{server.url}gradio_api/call/generate/{event}", timeout=20).text
    assert "event: error" in reply and f"{label} must be a finite number, got nan" in reply
    assert len(text_of(request(client, length=10))) == 10, "the app serves requests after a bad one"


def test_score_agrees_with_the_library(client, server):
    found = client.predict(LSTM, "窗外的麻雀\n在电线杆上多嘴", "分开\n", 3, api_name="/score")
    expected = server.variants[LSTM].model.score("窗外的麻雀\n在电线杆上多嘴", "分开\n")
    assert found["perplexity"] == pytest.approx(expected.perplexity) and found["count"] == expected.count
    assert [s["position"] for s in found["surprising"]] == expected.most_surprising(3)
    first = found["surprising"][0]
    assert (first["line"], first["column"]) == (1 + expected.text.count("\n", 0, first["position"]),
                                                first["position"] - (expected.text.rfind("\n", 0, first["position"]) + 1) + 1)
    assert len(first["expected"]) == 5 and first["char"] == expected.text[first["position"]]
    bigram = server.variants[LSTM].bigram.score("窗外的麻雀\n在电线杆上多嘴", "分开\n")
    assert found["bigram_perplexity"] == pytest.approx(bigram.perplexity) and bigram.count == expected.count
    assert client.predict(SLOW, "分开", api_name="/score")["bigram_perplexity"] is None, "this one ships no bigram"


@pytest.mark.parametrize("text, message", [("", "Give some text to score"), ("分" * 100_001, "at most 100,000"),
                                           (None, "Give some text to score"), (42, "Text must be text")])
def test_bad_text_to_score_is_refused(client, text, message):
    job = finish(client.submit(LSTM, text, api_name="/score"))
    assert message in str(job.exception())


def test_odd_text_and_long_text_score(client):
    odd = client.predict(LSTM, "😀\x00\x07 分开\u200b", api_name="/score")
    assert odd["count"] == 7 and math.isfinite(odd["perplexity"])
    started = time.monotonic()
    long = client.predict(LSTM, "分开我想要你的微笑\n" * 10_000, "", 0, api_name="/score")
    assert long["count"] == 100_000 and long["surprising"] == [] and time.monotonic() - started < 60


def test_compare_streams_every_model_together_as_each_writes_alone(client, server):
    job = finish(client.submit("分开", 80, 0.8, 5, 2, 4, api_name="/compare"))
    updates = job.outputs()
    final = updates[-1]
    assert [row["variant"] for row in final] == list(server.variants)
    for row in final:
        model = server.variants[row["variant"]].model
        assert row["text"] == model.generate("分开", 80, 0.8, seed=5, lines=2, no_repeat_ngram=4)
        assert row["mean_logprob"] == pytest.approx(model.candidates("分开", 1, 80, 0.8, seed=5, lines=2,
                                                                      no_repeat_ngram=4)[0].mean_logprob)
    assert len(updates) > 1 and all(len(b[0]["text"]) >= len(a[0]["text"]) for a, b in zip(updates, updates[1:]))


def test_models_lists_every_variant(client, server):
    listed = client.predict(api_name="/models")
    assert [m["name"] for m in listed] == list(server.variants)
    assert listed[0]["cell"] == "lstm" and listed[0]["held_out_perplexity"] > 1


def test_many_requests_at_once_all_complete(server, client):
    jobs = [client.submit(LSTM, "分开", 100, 1.0, 0, 1, k, no_repeat_ngram=0, api_name="/generate")
            for k in range(24)]
    jobs += [client.submit(LSTM, "分开", 4, 60, seed=k, api_name="/candidates") for k in range(8)]
    for job in jobs:
        finish(job, 60)
    assert [len(text_of(job)) for job in jobs[:24]] == [100] * 24
    assert [len(job.outputs()[-1]) for job in jobs[24:]] == [4] * 8


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


def test_next_line_streams_what_the_library_writes(client, server):
    model = server.next_lines[NEXT_LINE].model
    job = finish(client.submit("窗外的麻雀", 0.8, 7, api_name="/next_line"))
    updates = job.outputs()
    assert updates[-1] == model.next_line("窗外的麻雀", temperature=0.8, seed=7)
    assert len(updates) >= 2 and all(b.startswith(a) for a, b in zip(updates, updates[1:])), "it streams"
    assert client.predict("窗外的麻雀", 0, None, NEXT_LINE, api_name="/next_line") == model.next_line(
        "窗外的麻雀", temperature=0)


@pytest.mark.parametrize("args, message", [(("分" * 501,), "at most 500"), (("分开", "hot"), "Temperature must be"),
                                           (("分开", 3), "from 0 to 2"), (("分开", 0.8, 1.5), "whole number"),
                                           (("分开", 0.8, None, "nope"), "Unknown next-line model"),
                                           ((42,), "Line must be text")])
def test_bad_input_to_next_line_is_refused(client, args, message):
    job = finish(client.submit(*args, api_name="/next_line"))
    assert message in str(job.exception())


def test_a_page_seed_left_empty_is_random_and_a_bad_one_is_refused():
    assert page_seed("") is None and page_seed("  ") is None and page_seed(None) is None
    assert page_seed(" 12 ") == 12 and page_seed(str(limits.SEED.high)) == limits.SEED.high
    for bad in ("abc", "-1", "1.5", str(limits.SEED.high + 1)):
        with pytest.raises(gr.Error, match="Seed must be"):
            page_seed(bad)


def test_64_streams_at_once_all_complete_batched_in_the_models_loop(server):
    """64 gradio_client streams on one model (loopback, bounded in time): every one completes with the text it writes
    alone, and the loop decoded them together: its decoding process spent well under the CPU time that 64 streams
    written one after another cost it (a batch's step costs little more than one row's). A matrix product of one
    row and one of many may round differently: where a draw lands within float rounding of a boundary the two may
    part."""
    loop, many = server.variants[LSTM].loop, Client(server.url, verbose=False, max_workers=64)
    pid = loop.decoder.process.pid
    before = cpu_ticks(pid)
    for k in range(8):
        pieces_text(loop_stream(loop, "分开", 200, seed=k))
    one_after_another = (cpu_ticks(pid) - before) * 64 / 8
    before = cpu_ticks(pid)
    jobs = [many.submit(LSTM, "分开", 200, 1.0, 0, 1, k, no_repeat_ngram=0, api_name="/generate") for k in range(64)]
    for job in jobs:
        finish(job, 120)
    together = cpu_ticks(pid) - before
    texts = [text_of(job) for job in jobs]
    assert [len(t) for t in texts] == [200] * 64
    model = server.variants[LSTM].model
    alone = [model.generate("分开", 200, 1.0, seed=k) for k in range(64)]
    matching = sum(t == a for t, a in zip(texts, alone))
    assert matching >= 60, f"only {matching} of 64 streams wrote what they write alone"
    assert together < 0.6 * one_after_another, f"{together} clock ticks together, {one_after_another:.0f} one by one"


def test_a_stop_frees_the_loops_row_at_once(client, server):
    """63 long requests share the loop's 64 rows meanwhile: a tiny model alone writes 1,000 characters in about
    0.1 s, faster than a Stop arrives; among them it takes seconds, so a stream that ends short was stopped. The row
    it leaves is free at once: a new request is written in it while the 63 go on."""
    loop = server.variants[LSTM].loop
    others = loop.submit(["分开"] * 63, 10**6, [Options(seed=k) for k in range(63)], details=True)
    try:
        job = client.submit(LSTM, "分开", 1000, 1.0, 0, 1, None, no_repeat_ngram=0, api_name="/generate")
        wait_until(lambda: len(job.outputs()) >= 2, 15, "no streaming")
        job.cancel()
        finish(job)
        assert len(job.outputs()[-1]) < 1000
        wait_until(lambda: loop.open == len(others), 5, "the cancelled stream is still open")
        [after] = loop.submit(["分开"], 5, [Options(seed=1)])
        assert after.ended.wait(10), "the cancelled stream kept its row: a new request found none"
    finally:
        for request in others:
            request.cancel()
    wait_until(lambda: loop.open == 0, 5, "the library's requests are still open")
    pid = loop.decoder.process.pid
    wait_until(lambda: cpu_used(pid, 0.5) <= 1, 10, "the decoding process kept writing for cancelled requests")


def test_a_full_loop_answers_busy_at_once(client, server, monkeypatch):
    """A loop with no place left (the library's tests fill one for real) refuses the page and the API clearly."""
    loop = server.variants[LSTM].loop
    monkeypatch.setattr(loop, "rows", 0)
    monkeypatch.setattr(loop, "most_waiting", 0)
    for api_name, args in (("/generate", ()), ("/candidates", (2,))):
        refused = finish(client.submit(LSTM, "分开", *args, api_name=api_name), 10)
        assert "busy" in str(refused.exception()) and "Try again" in str(refused.exception())


def test_the_app_writes_on_after_its_decoding_process_dies(client, server):
    """The decoding process killed (as an out-of-memory kill would): a new one takes over and the page writes on."""
    decoder = server.variants[LSTM].loop.decoder
    dead = decoder.process
    dead.kill()
    wait_until(lambda: decoder.process is not dead, 15, "no new decoding process")
    text = text_of(request(client, length=40, seed=5))
    assert text == server.variants[LSTM].model.generate("分开", 40, 1.0, seed=5)


@pytest.mark.parametrize("name, value, message", [("CHARRNN_DECODERS", "0", "CHARRNN_DECODERS must be a whole number"),
                                                  ("CHARRNN_DECODERS", "two", "CHARRNN_DECODERS must be a whole number"),
                                                  ("CHARRNN_DECODING", "gpu", "CHARRNN_DECODING must be loop or")])
def test_a_bad_serving_setting_stops_the_app_with_a_clear_message(name, value, message):
    """Settings are read once, at start: importing the app's modules never fails on one; starting the app does."""
    env = {**os.environ, name: value}
    imported = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    done = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


# Co-writing ---------------------------------------------------------------------------------------------------

def test_co_writing_options_reach_the_library(client, server):
    form = dict(line_lengths="7,5", scheme="AA", keywords="我", keywords_in_order=True)
    text = text_of(request(client, prefix="", length=10, temperature=0.8, seed=4, **form))
    assert text == server.variants[LSTM].model.generate("", 10, 0.8, seed=4, no_repeat_ngram=0, **form)
    assert [sum(not c.isspace() for c in line) for line in text.split("\n")[:-1]] == [7, 5]  # 10 was raised
    found = client.predict(LSTM, "", 2, 100, 0.8, 0, 1.0, 6, 0, "", "off", 1.0, 0, "5,5", "AA", "你",
                           api_name="/candidates")
    assert all(c["text"].count("\n") == 2 and "你" in c["text"] for c in found)
    assert "Rhyme scheme must be empty when a rhyme is given" in str(request(client, rhyme="江阳",
                                                                             scheme="AABB").exception())


def test_rewrite_keeps_the_kept_lines_and_matches_the_library(client, server):
    lyric = "窗外的麻雀\n在电线杆上多嘴\n你说这一句\n很有夏天的感觉"
    new = client.predict(LSTM, lyric, "1,3", 2, 0.8, 0, 1.0, 9, "", "off", 1.0, 4, "", "ABAB", "",
                         api_name="/rewrite")
    model = server.variants[LSTM].model
    assert new == [model.rewrite(lyric, "1,3", 0.8, seed=9 + i, no_repeat_ngram=4, scheme="ABAB") for i in (0, 1)]
    for text in new:
        lines = text.split("\n")
        assert len(lines) == 4 and lines[0] == "窗外的麻雀" and lines[2] == "你说这一句"
    assert new[0] != new[1]


def test_rewrites_draw_on_the_next_line_model_of_the_same_lyrics(client, server):
    lyric = "窗外的麻雀\n在电线杆上多嘴\n你说这一句\n很有夏天的感觉"
    args = (LSTM, lyric, "1,3", 2, 0.8, 0, 1.0, 9, "", "off", 1.0, 4, "", "", "", False)
    drawn = client.predict(*args, True, api_name="/rewrite")
    model, writer = server.variants[LSTM].model, server.next_lines[FUSED].model
    assert drawn == [model.rewrite(lyric, "1,3", 0.8, seed=9 + i, no_repeat_ngram=4, next_line=writer) for i in (0, 1)]
    assert client.predict(*args, False, api_name="/rewrite") == [
        model.rewrite(lyric, "1,3", 0.8, seed=9 + i, no_repeat_ngram=4) for i in (0, 1)]
    english = client.predict(GRU, "The time\nmachine", "1", 1, 0.8, 0, 1.0, 9, "", "off", 1.0, 4, "", "", "",
                             False, True, api_name="/rewrite")
    assert english == [server.variants[GRU].model.rewrite("The time\nmachine", "1", 0.8, seed=9, no_repeat_ngram=4)], \
        "no next-line model of its text: the model's own candidates alone"
    job = finish(client.submit(*args, "yes", api_name="/rewrite"))
    assert "Next line must be true or false" in str(job.exception())


@pytest.mark.parametrize("args, message", [
    (("", "1"), "Lyric is empty"), (("我\n你", "3"), "Keep must be line numbers from 1 to 2"),
    (("我\n你", "one"), "Keep must be line numbers"), (("我", "", 5), "n must be from 1 to 4"),
    (("我", "", 1, 0.8, 0, 1.0, None, "", "off", 1.0, 4, "0"), "Line lengths must be"),
    ((["我"], ""), "Lyric must be text"),
])
def test_bad_rewrites_are_refused(client, args, message):
    job = finish(client.submit(LSTM, *args, api_name="/rewrite"))
    assert message in str(job.exception())
