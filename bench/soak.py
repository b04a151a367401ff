"""The demo held under load for a while, as a busy public Space is: `python -m bench.soak` (needs `make models`).

Starts `app.py` in its own process with every default model (models.txt) and lets LISTENERS visitors use it for
MINUTES: each, in a loop, takes 1-4 s over what came back, then calls an endpoint over the HTTP API (/generate, /candidates, /score, /compare, /next_line,
/models, with their options drawn at random, one text in ten at the 100,000-character limit), or an MCP tool; some walk
away (a stream closed after its first update, or a request never read); about 15% send bad input (NaN, Infinity,
malformed JSON, wrong types, wrong argument counts, an unknown endpoint, model or event, a body over the limit).
Every answer is sorted by kind, and every process's resident memory (the web server and each decoding process) is
sampled every few seconds. Before and after (once what the soak left queued is done and the app is idle again), 16
visitors at once ask /generate for 200 characters (three bursts each time): the first update's p95 must not grow
(beside it, a fixed piece of work timed just before each probe says how fast the machine itself was then).

Targets (issue 26): every process's memory flat over the second half (its range within 64 MB); every request a
clear answer (a result, or a refusal with words: "busy" where the server is full); no 5xx; no dropped connection; first update after as before.

    python -m bench.soak                       # 64 listeners, 10 minutes
    python -m bench.soak --listeners 16 --minutes 2
    python -m bench.soak --decoding per-request  # each request decoded alone, in the web server's process
"""
import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from bench.app_latency import SSL_CONTEXT, burst, free_port, p95, start_app, wait_for
from bench.common import cpu_ticks, rss_mb
from ui.server import MAX_BODY

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EVERY = 5.0  # seconds between memory samples
DEADLINE = 120.0  # seconds a request may take before it counts as unanswered
PROBE_BURSTS = 3
FLAT = 64  # MB: the most a process's memory may move over the second half
READING = (1.0, 4.0)  # seconds a listener takes over what came back before the next request
DRAIN = 30.0  # seconds at least after the soak before the second probe: results nobody reads are dropped
QUIET = 0.1  # cores: the app is idle again (the requests the soak left queued are done) below this use
CHINESE = "窗外的麻雀在电线杆上多嘴你说这一句很有夏天的感觉"
ENGLISH = "The Time Traveller was expounding a recondite matter to us. "


def children(pid: int) -> list[int]:
    """The decoding processes: the web server's child processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def text(rng: random.Random, english: bool, most: int) -> str:
    source = ENGLISH if english else CHINESE
    n = rng.choices([rng.randint(1, 40), rng.randint(1, 2000), most], weights=[45, 45, 10])[0]
    return (source * (n // len(source) + 1))[:n]


def good_request(rng: random.Random, models: list[dict]) -> tuple[str, list]:
    """An endpoint and its arguments, every option drawn at random within its limits."""
    model = rng.choice(models)
    english = model["corpus"] and "timemachine" in model["corpus"]
    kind = rng.choices(["generate", "candidates", "score", "compare", "next_line", "models"],
                       weights=[45, 12, 15, 8, 12, 8])[0]
    form = [rng.choice([0, 0, 4]), rng.choice(["", "", "春夏秋冬"]) if not english else "",
            rng.choice(["off", "auto", "江阳"] if not english else ["off", "auto", "time"]),
            rng.choice([1.0, 1.3]), rng.choice([0, 4])]
    sampling = [rng.choice([0, 0.8, 1.2]), rng.choice([0, 0, 20]), rng.choice([1.0, 0.9]),
                rng.choice([None, rng.randrange(2**32)])]
    if kind == "generate":
        return kind, [model["name"], text(rng, english, 100_000), rng.randint(1, 300), *sampling, *form]
    if kind == "candidates":
        return kind, [model["name"], text(rng, english, 2000), rng.randint(1, 6), rng.randint(1, 120), *sampling,
                      *form]
    if kind == "score":
        return kind, [model["name"], text(rng, english, 100_000), text(rng, english, 200), rng.randint(0, 20)]
    if kind == "compare":
        return kind, [text(rng, english, 2000), rng.randint(1, 120), rng.choice([0, 0.8]), rng.randrange(100),
                      rng.choice([0, 2]), rng.choice([0, 4])]
    if kind == "next_line":  # the first next-line model (an empty name)
        return kind, [text(rng, False, 500), rng.choice([0, 0.8]), rng.choice([None, 7]), ""]
    return "models", []


def bad_request(rng: random.Random, models: list[dict]) -> tuple[str, str | bytes]:
    """An endpoint and a raw body that must be refused with words."""
    name = json.dumps(models[0]["name"])
    return rng.choice([
        ("generate", f'{{"data": [{name}, "分开", 20, NaN]}}'),
        ("generate", f'{{"data": [{name}, "分开", Infinity]}}'),
        ("generate", f'{{"data": [{name}, {{"a": 1}}]}}'),
        ("generate", f'{{"data": [{name}, "分开", 20, 0.8, 0, 1, null, 0, "", "off", 1, 4, 5, 6]}}'),
        ("generate", '{"data": []}'),
        ("generate", '{"data": ['),
        ("score", f'{{"data": [{name}, ""]}}'),
        ("score", f'{{"data": [{name}, 42, "", -1]}}'),
        ("candidates", f'{{"data": [{name}, "分开", 0]}}'),
        ("next_line", '{"data": ["分开", 9]}'),
        ("generate", '{"data": ["no such model", "分开"]}'),
        ("no_such_endpoint", '{"data": []}'),
        ("generate", b'{"data": ["' + b"a" * (MAX_BODY + 10) + b'"]}'),
    ])


def outcome(status: int, body: str) -> str:
    """The kind of a non-streamed answer."""
    if status >= 500:
        return f"HTTP {status}"
    if status >= 400:
        try:
            detail = json.loads(body).get("detail")
        except (ValueError, AttributeError):
            detail = None
        if status == 429 and isinstance(detail, str) and "busy" in detail:
            return "busy (429, with words)"
        return f"refused ({status}, with words)" if isinstance(detail, str) and detail else f"HTTP {status} no words"
    return "accepted"


async def read_events(http: httpx.AsyncClient, api: str, event: str, walk_away: bool) -> tuple[str, float | None]:
    """The kind of a streamed answer, and seconds to its first update."""
    started, first = time.perf_counter(), None
    async with http.stream("GET", f"gradio_api/call/{api}/{event}") as events:
        if events.status_code != 200:
            return outcome(events.status_code, (await events.aread()).decode()), None
        kind = None
        async for line in events.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                first = first or time.perf_counter() - started
                if kind == "complete":
                    return "complete", first
                if kind == "error":
                    message = (json.loads(line[6:]) or {}).get("error")
                    busy = isinstance(message, str) and "busy" in message
                    return ("busy" if busy else "refused (with words)") if message else "error without words", first
                if walk_away:
                    return "walked away", first
    return "dropped connection", first


async def call(http: httpx.AsyncClient, api: str, body, walk_away: bool = False, never_read: bool = False) -> str:
    posted = await http.post(f"gradio_api/call/{api}", content=body if isinstance(body, bytes) else body.encode(),
                             headers={"content-type": "application/json"})
    kind = outcome(posted.status_code, posted.text)
    if kind != "accepted" or never_read:
        return "never read" if kind == "accepted" else kind
    return (await read_events(http, api, posted.json()["event_id"], walk_away))[0]


async def mcp_call(url: str, rng: random.Random, models: list[dict]) -> str:
    async with streamablehttp_client(f"{url}gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tool, arguments = rng.choice([("models", {}), ("score", {"variant": models[0]["name"], "text": "分开"}),
                                          ("generate", {"variant": models[0]["name"], "prefix": "分开", "length": 30}),
                                          ("generate", {"variant": models[0]["name"], "prefix": "分开", "length": -3})])
            tools = {t.name: t.name for t in (await session.list_tools()).tools}
            name = next(n for n in tools if n.endswith(tool))
            result = await session.call_tool(name, arguments)
            words = result.content and result.content[0].text
            return ("MCP refused (with words)" if words else "MCP error without words") if result.isError else \
                "MCP complete"


@dataclasses.dataclass
class Tally:
    """Every answer by kind, requests and the slowest answer by endpoint, and which endpoints gave unclear answers."""
    kinds: Counter = dataclasses.field(default_factory=Counter)
    endpoints: Counter = dataclasses.field(default_factory=Counter)
    slowest: dict = dataclasses.field(default_factory=dict)
    unclear: Counter = dataclasses.field(default_factory=Counter)

    def add(self, label: str, kind: str, seconds: float) -> None:
        self.kinds[kind] += 1
        self.endpoints[label] += 1
        self.slowest[label] = max(self.slowest.get(label, 0.0), seconds)
        if unclear(kind):
            self.unclear[f"{label}: {kind}"] += 1


async def listener(k: int, url: str, until: float, models: list[dict], tally: Tally) -> None:
    rng = random.Random(k)
    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE, verify=SSL_CONTEXT) as http:
        while time.monotonic() < until:
            roll = rng.random()
            if roll < 0.15:
                api, body = bad_request(rng, models)
                label, work = f"bad input to /{api}", call(http, api, body)
            elif roll < 0.18:
                label, work = "MCP", mcp_call(url, rng, models)
            else:
                api, data = good_request(rng, models)
                walk_away, never_read = rng.random() < 0.05, rng.random() < 0.05
                label, work = f"/{api}", call(http, api, json.dumps({"data": data}), walk_away, never_read)
            started = time.monotonic()
            try:
                kind = await asyncio.wait_for(work, DEADLINE)
            except asyncio.TimeoutError:
                kind = "no answer in time"
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
                kind = f"dropped connection ({type(e).__name__})"
            except Exception as e:  # noqa: BLE001 - a soak counts every failure, by kind
                kind = f"client error ({type(e).__name__})"
            tally.add(label, kind, time.monotonic() - started)
            await asyncio.sleep(rng.uniform(*READING))


async def sample_memory(pid: int, until: float, samples: list) -> None:
    started = time.monotonic()
    while time.monotonic() < until:
        samples.append((time.monotonic() - started, {"web server": rss_mb(pid),
                                                     **{f"decoding process {i + 1}": rss_mb(c)
                                                        for i, c in enumerate(sorted(children(pid)))}}))
        await asyncio.sleep(SAMPLE_EVERY)


async def first_updates(url: str, models: list[dict], seed: int) -> list[float]:
    """First-update p95 of each of PROBE_BURSTS bursts of 16 /generate at once."""
    visitors = [httpx.AsyncClient(base_url=url, timeout=DEADLINE, verify=SSL_CONTEXT,
                                  headers={"x-visitor": f"probe-{seed}-{k}"}) for k in range(16)]
    names = [m["name"] for m in models if m["corpus"]]
    try:
        await burst(visitors, names, 16, seed)  # warm-up: each visitor's session
        return [p95([r["first"] for r in (await burst(visitors, names, 16, seed + b))["results"]])
                for b in range(PROBE_BURSTS)]
    finally:
        for http in visitors:
            await http.aclose()


async def soak(url: str, pid: int, listeners: int, minutes: float) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE) as http:
        models = await models_of(http)
    machine_before = machine_seconds()
    before = await first_updates(url, models, 1)
    until, tally, samples = time.monotonic() + minutes * 60, Tally(), []
    await asyncio.gather(sample_memory(pid, until + SAMPLE_EVERY, samples),
                         *(listener(k, url, until, models, tally) for k in range(listeners)))
    await asyncio.sleep(DRAIN)
    idle = await quiet(pid)
    machine_after = machine_seconds()
    after = await first_updates(url, models, 2)
    return dict(before=before, after=after, tally=tally, samples=samples, idle=idle,
                machine=machine_after / machine_before)


def machine_seconds() -> float:
    """The best of five timings of a fixed piece of pure-Python work: this machine's own speed (a shared host's
    drifts), so that the app's first update after the soak is compared with the machine's own speed then."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for k in range(300_000):
            total += k * k % 7
        best = min(best, time.perf_counter() - started)
    return best


def cpu_seconds(pid: int) -> float:
    """CPU time used by a process and, for the web server, its decoding processes."""
    ticks = 0
    for process in [pid, *children(pid)]:
        with contextlib.suppress(OSError):  # a process that has just ended
            ticks += cpu_ticks(process)
    return ticks / os.sysconf("SC_CLK_TCK")


async def quiet(pid: int, most: float = 180.0) -> bool:
    """Wait (at most `most` seconds) until the app is idle, and say whether it got there: what the soak left in the
    queues (scores wait there their turn, a core each) must not be measured as the app after it."""
    ends = time.monotonic() + most
    while time.monotonic() < ends:
        before = cpu_seconds(pid)
        await asyncio.sleep(2.0)
        if 0 <= cpu_seconds(pid) - before < 2.0 * QUIET:  # below 0: a decoding process was started anew meanwhile
            return True
    return False


async def models_of(http: httpx.AsyncClient) -> list[dict]:
    posted = await http.post("gradio_api/call/models", json={"data": []})
    reply = (await http.get(f"gradio_api/call/models/{posted.json()['event_id']}")).text
    return json.loads(reply.split("data: ", 1)[1].splitlines()[0])[0]


def errors_in(log: str) -> list[str]:
    """The exception line that ends each traceback in the server's log."""
    lines, found = log.splitlines(), []
    for k, line in enumerate(lines):
        if line.startswith("Traceback"):
            found.append(next((later for later in lines[k + 1:] if later and not later.startswith((" ", "Traceback"))),
                              "?"))
    return found


def unclear(kind: str) -> bool:
    """Whether an answer is no clear answer: a 5xx or a refusal without words, an error without words, a dropped connection, none in time."""
    return kind.startswith(("HTTP", "error without", "dropped", "no answer", "client error", "MCP error"))


def memory_table(samples: list) -> tuple[list[str], bool]:
    processes = sorted({name for _, found in samples for name in found})
    half = samples[len(samples) // 2:]
    lines = ["| process | start MB | at half time MB | end MB | peak MB | second half's range MB | flat |",
             "|---|---|---|---|---|---|---|"]
    flat = True
    for name in processes:
        series = [found.get(name) for _, found in samples if found.get(name) is not None]
        second = [found.get(name) for _, found in half if found.get(name) is not None]
        spread = max(second) - min(second)
        flat &= spread <= FLAT
        lines.append(f"| {name} | {series[0]:.0f} | {second[0]:.0f} | {series[-1]:.0f} | {max(series):.0f} | "
                     f"{spread:.0f} | {'yes' if spread <= FLAT else 'NO'} |")
    return lines, flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listeners", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--decoding", choices=["loop", "per-request"], default="loop",
                        help="CHARRNN_DECODING: the decoding loops in processes of their own, or each request alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, log = f"http://127.0.0.1:{(port := free_port())}/", Path(tmp) / "app.log"
        app = start_app(args.decoding, port, log, models=None)  # models.txt: the next-line model too
        try:
            wait_for(app, url, log)
            found = asyncio.run(soak(url, app.pid, args.listeners, args.minutes))
        finally:
            app.terminate()
            app.wait(10)
        tracebacks = errors_in(log.read_text())
    print(f"\n{args.listeners} listeners for {args.minutes:g} minutes, every endpoint, decoding {args.decoding}; "
          f"{sum(found['tally'].kinds.values()):,} requests\n")
    lines, flat = memory_table(found["samples"])
    print("\n".join(lines))
    print("\n| answer | requests |\n|---|---|")
    tally = found["tally"]
    for kind, n in tally.kinds.most_common():
        print(f"| {kind} | {n:,} |")
    print("\n| endpoint | requests | slowest answer s |\n|---|---|---|")
    for api, n in sorted(tally.endpoints.items()):
        print(f"| {api} | {n:,} | {tally.slowest[api]:.1f} |")
    for where, n in sorted(tally.unclear.items()):
        print(f"unclear: {where}: {n}")
    before, after = found["before"], found["after"]
    print(f"\nfirst update p95, 16 /generate at once, {PROBE_BURSTS} bursts each: before "
          f"{', '.join(f'{x:.3f}' for x in before)} s (median {statistics.median(before):.3f}); after "
          f"{', '.join(f'{x:.3f}' for x in after)} s (median {statistics.median(after):.3f})"
          f"{'' if found['idle'] else '; the app was still busy with what the soak left when it was measured'}")
    unclear_kinds = {k: n for k, n in tally.kinds.items() if unclear(k)}
    print(f"tracebacks in the server's log: {len(tracebacks)}" + "".join(f"\n  {e}" for e in sorted(set(tracebacks))))
    print(f"\ntargets: memory flat over the second half (range <= {FLAT} MB): {'met' if flat else 'MISSED'}; "
          f"every request a clear answer, no 5xx, no dropped connection: {'met' if not unclear_kinds else f'MISSED {unclear_kinds}'}; "
          f"first update after as before: median {statistics.median(after) / statistics.median(before):.2f}x, "
          f"while the machine itself took {found['machine']:.2f}x the time of a fixed piece of work "
          f"({statistics.median(after) / statistics.median(before) / found['machine']:.2f}x at the machine's speed)")


if __name__ == "__main__":
    main()
