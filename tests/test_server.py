"""The web server around the page (ui/server.py), over real HTTP: bodies bounded, every refusal worded, 404 for what
does not exist, gradio's sessions forgotten when nothing in them can be needed, and memory that stays flat under
many requests to every endpoint (the app in a process of its own, as `python app.py` runs)."""
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from bench.common import rss_mb
from charrnn.limits import TEXT as MAX_TEXT
from conftest import cut
from engine import memory
from test_app import GRU, LSTM, ROOT, free_port, server, wait_until  # noqa: F401 (server: a fixture)
from ui import server as web

pytestmark = pytest.mark.server

# The leak this guards against kept ~225 KB and the text of every request: 1,100 requests grew the server ~300 MB.
FLAT_MB = 50


def post(server, api: str, body, **headers) -> httpx.Response:
    content = body if isinstance(body, bytes) else body.encode()
    return httpx.post(f"{server.url}gradio_api/call/{api}", content=content, timeout=30,
                      headers={"content-type": "application/json", **headers})


def result(server, api: str, event: str) -> str:
    return httpx.get(f"{server.url}gradio_api/call/{api}/{event}", timeout=30).text


def answer(server, api: str, body) -> tuple[int, str]:
    """The refusal's sentence (HTTP status, detail), or the event stream's last event and its data."""
    posted = post(server, api, body)
    if posted.status_code != 200:
        return posted.status_code, posted.json()["detail"]
    events = result(server, api, posted.json()["event_id"]).strip().split("\n")
    return 200, f"{events[-2]} {events[-1]}"


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    host, port = httpx.URL(server.url).host, httpx.URL(server.url).port
    with socket.create_connection((host, port), timeout=10) as raw:  # a length declared, the body never sent
        raw.sendall(f"POST /gradio_api/call/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {web.MAX_BODY + 1}\r\n\r\n{{".encode())
        reply = b""
        while not reply.endswith(b"}"):
            reply += raw.recv(65536)
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and f"{web.MAX_BODY:,} bytes" in reply

    def chunks():  # no length declared: the guard counts what arrives
        yield b'{"data": ["'
        for _ in range(web.MAX_BODY // 65536 + 1):
            yield b"a" * 65536
    streamed = httpx.post(f"{server.url}gradio_api/call/score", content=chunks(), timeout=30)
    assert streamed.status_code == 413 and "larger than this server takes" in streamed.json()["detail"]
    assert answer(server, "models", '{"data": []}')[0] == 200, "the server answers on"


def test_the_largest_request_fits_the_limit(server):
    """/score's two texts at their limit, of characters JSON escapes to 12 bytes each, fit under the body limit."""
    body = json.dumps({"data": [LSTM, "😀" * MAX_TEXT, "😀" * MAX_TEXT, 0]})
    assert web.MAX_BODY > len(body.encode())


LSTM_JSON = json.dumps(LSTM)


@pytest.mark.parametrize("api, body, status, words", [
    ("generate", f'{{"data": [{LSTM_JSON}, "分开", NaN]}}', 200, "Length must be a finite number, got nan"),
    ("generate", f'{{"data": [{LSTM_JSON}, "分开", 20, Infinity]}}', 200, "Temperature must be a finite number, got inf"),
    ("generate", f'{{"data": [{LSTM_JSON}, "分开", 20, -Infinity]}}', 200, "Temperature must be a finite number"),
    ("generate", '{"data": [NaN, "分开"]}', 200, "Unknown model nan"),
    ("score", f'{{"data": [{LSTM_JSON}, NaN]}}', 200, "Text must be text, got nan"),
    ("compare", '{"data": ["分开", 20, NaN]}', 200, "Temperature must be a finite number, got nan"),
    ("next_line", '{"data": ["分开", Infinity]}', 200, "Temperature must be a finite number, got inf"),
    ("generate", '{"data": [', 422, "not valid JSON: Expecting value"),
    ("generate", "not json", 422, "not valid JSON"),
    ("generate", '{"data": "分开"}', 422, 'whose "data" is the list of arguments'),
    ("generate", '["分开"]', 422, 'whose "data" is the list of arguments'),
    ("generate", '{"data": []}', 422, "/generate needs variant, prefix as well"),
    ("generate", f'{{"data": [{LSTM_JSON}]}}', 422, "/generate needs prefix as well"),
    ("generate", json.dumps({"data": [LSTM, "分开"] + [1] * 15}), 422, "/generate takes at most 16 arguments"),
    ("models", '{"data": [1]}', 422, "/models takes no arguments; got 1"),
    ("generate", json.dumps({"data": [LSTM, {"a": 1}]}), 200, "Prefix must be text, got {'a': 1}"),
    ("generate", json.dumps({"data": [LSTM, "分开", "20"]}), 200, "Length must be a finite number, got '20'"),
    ("generate", json.dumps({"data": ["x" * 10_000, "分开"]}), 200, "(10,002 characters)"),
    ("score", json.dumps({"data": [LSTM, "分" * (MAX_TEXT + 1)]}), 200, "Text may have at most 100,000 characters"),
    ("no_such_thing", '{"data": []}', 404, "There is no endpoint /no_such_thing; the endpoints are /generate"),
    ("write", '{"data": []}', 404, "There is no endpoint /write"),  # the page's own handler is not the API's
])
def test_every_refusal_has_words(server, api, body, status, words):
    found_status, found = answer(server, api, body)
    assert found_status == status and words in found, found
    if status == 200:
        assert found.startswith("event: error"), found


def test_arguments_left_out_take_their_defaults(server):
    """As gradio_client fills them in: the length defaults to 200, and a seed repeats."""
    status, found = answer(server, "generate", json.dumps({"data": [LSTM, "分开"]}))
    assert status == 200 and found.startswith("event: complete")
    assert len(json.loads(found.split("data: ", 1)[1])[0]) == 200
    seeded = [answer(server, "generate", json.dumps({"data": [LSTM, "分开", 30, 1.0, 0, 1.0, 7]}))[1] for _ in "ab"]
    assert seeded[0] == seeded[1] and seeded[0].startswith("event: complete")


def test_a_full_queue_is_a_429_with_words(server, monkeypatch):
    monkeypatch.setattr(server.demo._queue, "max_size", 0)
    refused = post(server, "generate", json.dumps({"data": [LSTM, "分开"]}))
    assert refused.status_code == 429 and "busy" in refused.json()["detail"] and "Try again" in refused.json()["detail"]


def test_the_api_docs_v2_call_takes_arguments_by_name(server):
    """The curl example of gradio's API page posts to /call/v2/<endpoint> with the arguments by name."""
    posted = httpx.post(f"{server.url}gradio_api/call/v2/generate", json={"variant": LSTM, "prefix": "分开",
                                                                         "length": 15}, timeout=30)
    assert posted.status_code == 200, posted.text
    reply = httpx.get(f"{server.url}gradio_api/call/v2/generate/{posted.json()['event_id']}", timeout=30).text
    assert "event: complete" in reply
    assert httpx.post(f"{server.url}gradio_api/call/v2/nope", json={}, timeout=30).status_code == 404


def test_a_result_that_is_not_there_is_a_404_with_words(server):
    unknown = httpx.get(f"{server.url}gradio_api/call/generate/abc123", timeout=10)
    assert unknown.status_code == 404 and "no result for event abc123" in unknown.json()["detail"]
    event = post(server, "models", '{"data": []}').json()["event_id"]
    assert "event: complete" in result(server, "models", event)
    again = httpx.get(f"{server.url}gradio_api/call/models/{event}", timeout=10)
    assert again.status_code == 404 and "already read" in again.json()["detail"], "not a dropped connection"
    assert httpx.get(f"{server.url}gradio_api/call/nope/{event}", timeout=10).status_code == 404


def sessions(server) -> dict:
    return server.demo.state_holder.session_data


def test_a_call_that_names_no_session_leaves_none_behind(server):
    event = post(server, "generate", json.dumps({"data": [LSTM, "分开", 10]})).json()["event_id"]
    assert "event: complete" in result(server, "generate", event)
    wait_until(lambda: event not in sessions(server), 3 * web.SWEEP_EVERY, "the call's session was kept")
    assert event not in server.demo._queue.pending_event_ids_session


def test_a_named_session_is_kept_while_used_and_forgotten_when_idle(server, monkeypatch):
    body = json.dumps({"data": [LSTM, "分开", 10], "session_hash": "visitor-1"})
    assert "event: complete" in result(server, "generate", post(server, "generate", body).json()["event_id"])
    sweeper = web.Sweeper(server.demo)
    assert sweeper.sweep(time.monotonic()) == 0 and "visitor-1" in sessions(server), "kept for its next request"
    monkeypatch.setattr(web, "KEEP_IDLE", 0.0)
    sweeper.sweep(time.monotonic())
    assert "visitor-1" not in sessions(server)
    assert "event: complete" in result(server, "generate", post(server, "generate", body).json()["event_id"]), \
        "a forgotten session's hash works again"


def test_a_session_holding_state_is_kept(server, monkeypatch):
    """A page's candidates or song live in a gr.State: its session stays however long it is idle."""
    monkeypatch.setattr(web, "KEEP_IDLE", 0.0)
    state = next(block for block in server.demo.blocks.values() if type(block).__name__ == "State")
    sessions_ = server.demo.state_holder
    sessions_["page-visitor"][state._id] = ["a candidate"]
    sweeper = web.Sweeper(server.demo)
    sweeper.sweep(time.monotonic())
    sweeper.sweep(time.monotonic())
    assert sessions_["page-visitor"][state._id] == ["a candidate"]


def test_a_result_nobody_reads_is_dropped(server, monkeypatch):
    event = post(server, "generate", json.dumps({"data": [LSTM, "分开", 10]})).json()["event_id"]
    queue = server.demo._queue
    wait_until(lambda: event not in queue.event_ids_to_events, 20, "the request did not end")
    monkeypatch.setattr(web, "UNREAD", 0.0)
    web.Sweeper(server.demo).sweep(time.monotonic())
    assert event not in queue.pending_messages_per_session and event not in sessions(server)
    late = httpx.get(f"{server.url}gradio_api/call/generate/{event}", timeout=10)
    assert late.status_code == 404 and "not read within" in late.json()["detail"]


# Memory, with the app in a process of its own.

async def calls(url: str, requests: list[tuple[str, list]], at_once: int = 8) -> list[str]:
    """Each (endpoint, arguments) over the HTTP API, at_once at a time: the last event of each."""
    limit = asyncio.Semaphore(at_once)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        async def one(api, data):
            async with limit:
                posted = await http.post(f"gradio_api/call/{api}", json={"data": data})
                reply = (await http.get(f"gradio_api/call/{api}/{posted.json()['event_id']}")).text
                return [line for line in reply.splitlines() if line.startswith("event: ")][-1]
        return await asyncio.gather(*(one(api, data) for api, data in requests))


async def tool_calls(url: str, n: int) -> list[bool]:
    """n MCP tool calls (generate, score, next_line in turn) in one session: whether each succeeded."""
    async with streamablehttp_client(f"{url}gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            names = [t.name for t in (await session.list_tools()).tools]
            tool = {end: next(n for n in names if n.endswith(end)) for end in ("generate", "score", "next_line")}
            arguments = [(tool["generate"], {"variant": LSTM, "prefix": "分开", "length": 20}),
                         (tool["score"], {"variant": LSTM, "text": "分开" * 5000}),
                         (tool["next_line"], {"line": "窗外的麻雀"})]
            return [not (await session.call_tool(*arguments[k % 3])).isError for k in range(n)]


def generating(k: int) -> tuple[str, list]:
    """A /generate with its options varied, 20 characters."""
    return "generate", [LSTM, "分开" * (k % 7), 20, 0.8, k % 5, 1.0, k, k % 3, "", ["off", "auto"][k % 2], 1.0, 4]


PROSE = cut("timemachine.txt", 3000)  # what the English model learnt from


def scoring(k: int) -> tuple[str, list]:
    """A /score of the most text it takes (the English model's: the lyrics' rare characters make scoring slow)."""
    return "score", [GRU, (PROSE * (MAX_TEXT // len(PROSE) + 2))[k:k + MAX_TEXT], "", 10]


@pytest.fixture(scope="module", params=["loop", "per-request"])
def app_process(request, tiny_model_dir, english_model_dir, next_line_dir, tmp_path_factory):
    """`python app.py` in a process of its own, in each decoding mode (engine.settings)."""
    port, log = free_port(), tmp_path_factory.mktemp("app") / "app.log"
    env = {**os.environ, "CHARRNN_MODELS": f"{tiny_model_dir},{english_model_dir},{next_line_dir}",
           "CHARRNN_DECODING": request.param, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or "Running on local URL" in log.read_text(), 120,
                   "the app did not start")
        assert proc.poll() is None, log.read_text()
        yield proc, f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in log.read_text()


def settled_rss(proc) -> float:
    """The server's resident memory once the sweeper has passed twice and malloc's heaps have been trimmed."""
    time.sleep(2 * web.SWEEP_EVERY + memory.TRIM_EVERY + 1)
    return rss_mb(proc.pid)


@pytest.mark.timeout(900)  # about 4 minutes here (each mode): 100 scores of 100,000 characters are most of it
def test_memory_stays_flat_under_many_requests(app_process):
    """After a warm-up of every endpoint, 1,000 /generate and 100 maximum-size /score leave the web server's memory
    within FLAT_MB of where it was; so do 200 each of /candidates, /compare and /next_line and 60 MCP tool calls."""
    proc, url = app_process
    # The warm-up takes the server to the high-water mark of this mix (malloc's heaps, threads); what the rest adds
    # to it is what the requests leave behind.
    warm_up = ([generating(k) for k in range(300)] + [scoring(k) for k in range(30)] +
               [("candidates", [LSTM, "分开", 4, 20]), ("compare", ["分开", 20]), ("next_line", ["窗外的麻雀"])] * 40)
    warmed = asyncio.run(calls(url, warm_up))
    assert warmed.count("event: complete") == len(warm_up), [(r, e) for r, e in zip(warm_up, warmed) if e != "event: complete"][:3]
    assert all(asyncio.run(tool_calls(url, 30)))
    before = settled_rss(proc)

    found = asyncio.run(calls(url, [generating(k) for k in range(1000)] + [scoring(k) for k in range(100)]))
    assert found.count("event: complete") == 1100
    after_writing = settled_rss(proc)
    assert after_writing - before <= FLAT_MB, f"{before:.0f} MB -> {after_writing:.0f} MB"

    others = [request for k in range(200) for request in (
        ("candidates", [LSTM, "分开", 4, 20, 0.8, 0, 1.0, k]), ("compare", ["分开", 20, 0.8, k]),
        ("next_line", ["窗外的麻雀", 0.8, k]))]
    assert asyncio.run(calls(url, others)).count("event: complete") == 600
    assert all(asyncio.run(tool_calls(url, 60)))
    after_all = settled_rss(proc)
    print(f"the web server: {before:.0f} MB after the warm-up, {after_writing:.0f} after /generate and /score, "
          f"{after_all:.0f} after the rest")
    assert after_all - before <= FLAT_MB, f"{before:.0f} MB -> {after_all:.0f} MB"
