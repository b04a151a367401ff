"""The demo as many listeners see it: `python -m bench.app_latency` (needs `make models`).

Starts `app.py` in its own process on the five default character models, once with each model's decoding loop
(continuous batching, engine.loop, in decoding processes of their own, one per core: engine.workers) and once decoding per
request (CHARRNN_DECODING=per-request: the demo before the loop, and what a ZeroGPU Space still does), and drives
/generate over HTTP as a Space's visitors would: each stream its own connection, the variants in turn,
temperature 1, 200 characters. One asyncio client drives every stream (gradio_client in threads would compete with
the server for the 2 cores). Scenarios: 1 listener at a time, 16 at once, 64 at once. The two setups take turns,
three times, and each keeps its best, measure by measure: the latencies of its round with the lowest first-update
p95, its highest characters per second (this machine's speed drifts by up to 40%).

Targets (issue 11): 16 at once, first update p95 <= 0.3 s; 64 at once, all complete and first update p95 <= 1 s;
characters per second served at 16 at once >= 4x per-request decoding's.
"""
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from engine.catalog import display_name

ROOT = Path(__file__).resolve().parent.parent
MODELS = [ROOT / "models" / name for name in
          ("jaychou-lstm", "jaychou-gru", "jaychou-rnn", "jaychou-rnn-scratch", "timemachine-lstm")]
LENGTH = 200
SCENARIOS = {"1 listener at a time": (1, 10), "16 at once": (16, 4), "64 at once": (64, 1)}  # streams, bursts
SETUPS = {"per-request decoding": "per-request", "decoding loop": "loop"}
ROUNDS = 3
VISITORS = max(streams for streams, _ in SCENARIOS.values())
DEADLINE = 120.0
SSL_CONTEXT = ssl.create_default_context()  # httpx builds one per client otherwise: 30 ms of CPU each, even for http


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(serving: str, port: int, log: Path, models: list[Path] | None = MODELS) -> subprocess.Popen:
    """app.py on models (None: the app's own list, models.txt)."""
    env = {**os.environ, "CHARRNN_DECODING": serving, "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    if models is not None:
        env["CHARRNN_MODELS"] = ",".join(map(str, models))
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(app: subprocess.Popen, url: str, log: Path, deadline: float = 180.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            if httpx.get(url + "gradio_api/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if app.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"the app did not start:\n{log.read_text()}")
        time.sleep(0.5)


async def listen(http: httpx.AsyncClient, variant: str, seed: int) -> dict:
    """One visitor's request: seconds to its first streamed update and to its end, and the text's length."""
    prefix = "The " if "Time Machine" in variant else "分开"
    started = time.perf_counter()
    first, text, failed = None, "", None
    try:
        call = await http.post("gradio_api/call/generate", json={
            "data": [variant, prefix, LENGTH, 1.0, 0, 1.0, seed, 0, "", "off", 1.0, 4],
            "session_hash": http.headers["x-visitor"]})
        async with http.stream("GET", f"gradio_api/call/generate/{call.json()['event_id']}") as events:
            event = None
            async for line in events.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event in ("generating", "complete"):
                    first = first or time.perf_counter() - started
                    text = json.loads(line[6:])[0]
                elif line.startswith("data: ") and event == "error":
                    failed = line[6:]
    except (httpx.HTTPError, ValueError, KeyError) as e:
        failed = repr(e)
    return {"first": first if first is not None else DEADLINE, "total": time.perf_counter() - started,
            "chars": len(text), "ok": failed is None and len(text) == LENGTH}


async def burst(visitors: list[httpx.AsyncClient], variants: list[str], streams: int, seed: int) -> dict:
    """The first `streams` visitors at once, the variants in turn: each one's results, and characters per second
    over the burst, end to end."""
    started = time.perf_counter()
    results = await asyncio.gather(*(listen(visitors[k], variants[k % len(variants)], seed + k)
                                     for k in range(streams)))
    return {"results": results, "chars_per_s": sum(r["chars"] for r in results) / (time.perf_counter() - started)}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


async def scenarios(url: str, variants: list[str], round_: int) -> dict:
    """Every scenario against one running app. Each visitor has a connection and a session of its own, opened by a
    first request (as a page open in a browser has: a session's first request costs gradio ~50 ms of CPU)."""
    visitors = [httpx.AsyncClient(base_url=url, timeout=DEADLINE, verify=SSL_CONTEXT,
                                  headers={"x-visitor": f"visitor-{k}"}) for k in range(VISITORS)]
    await burst(visitors, variants, VISITORS, 0)  # warm-up: every visitor, every model
    found = {}
    for scenario, (streams, bursts) in SCENARIOS.items():
        runs = [await burst(visitors, variants, streams, 1000 * round_ + streams * b) for b in range(bursts)]
        found[scenario] = {"results": [r for run in runs for r in run["results"]],
                           "chars_per_s": statistics.mean(run["chars_per_s"] for run in runs)}
    for http in visitors:
        await http.aclose()
    return found


def better(a: dict | None, b: dict) -> dict:
    """A setup's better of two rounds, measure by measure (a busy moment of the machine hits one round, not all):
    the latencies of the round with the lower first-update p95, the higher characters per second."""
    if a is None:
        return b
    latencies = a if p95([r["first"] for r in a["results"]]) <= p95([r["first"] for r in b["results"]]) else b
    return {**latencies, "chars_per_s": max(a["chars_per_s"], b["chars_per_s"])}


def main() -> None:
    missing = [str(m) for m in MODELS if not (m / "model.safetensors").is_file()]
    if missing:
        raise SystemExit(f"train the default models first (make models): missing {', '.join(missing)}")
    sources = list(map(str, MODELS))
    variants = [display_name(s, sources) for s in sources]
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(ROUNDS):
            for setup, serving in SETUPS.items():
                url, log = f"http://127.0.0.1:{(port := free_port())}/", Path(tmp) / f"{serving}.log"
                app = start_app(serving, port, log)
                try:
                    wait_for(app, url, log)
                    print(f"round {round_ + 1}: {setup}", flush=True)
                    for scenario, found in asyncio.run(scenarios(url, variants, round_)).items():
                        best[setup, scenario] = better(best.get((setup, scenario)), found)
                finally:
                    app.terminate()
                    app.wait(10)

    print(f"\nfive models, /generate, {LENGTH} characters, temperature 1, a connection per stream; seconds from "
          f"submit; best of {ROUNDS} rounds\n")
    print("| scenario | setup | streams | failed | first update p50 | p95 | max | complete p95 | characters/s |"
          " vs per-request |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        baseline = best["per-request decoding", scenario]["chars_per_s"]
        for setup in SETUPS:
            m = best[setup, scenario]
            firsts, totals = [r["first"] for r in m["results"]], [r["total"] for r in m["results"]]
            print(f"| {scenario} | {setup} | {len(firsts)} | {sum(not r['ok'] for r in m['results'])} | "
                  f"{statistics.median(firsts):.3f} | {p95(firsts):.3f} | {max(firsts):.3f} | {p95(totals):.3f} | "
                  f"{m['chars_per_s']:,.0f} | {m['chars_per_s'] / baseline:.2f}x |")
    print("\ntargets: 16 at once, first update p95 <= 0.3 s; 64 at once, none fails and p95 <= 1 s; "
          "characters/s at 16 at once >= 4x per-request decoding")


if __name__ == "__main__":
    main()
