"""Listeners while a visitor trains: `python -m bench.train_latency` (needs `make models`; about 6 minutes).

Starts `app.py` as `make demo` does (the five default models, each with its decoding loop) and measures the first
update of /generate for 16 listeners at once (4 bursts, as bench/app_latency.py drives them): with the app idle, and
while one training started through /train runs (the tab's defaults on 20,000 characters of lyrics). The two take
turns, three times, and each keeps its best round (this machine's speed drifts by up to 40%).

Target (issue 28): the first update's p95 while training within 2x of idle.
"""
import asyncio
import statistics
import tempfile
import threading
from pathlib import Path

import httpx

from bench.app_latency import MODELS, SSL_CONTEXT, DEADLINE, better, burst, free_port, p95, start_app, wait_for
from bench.common import JAYCHOU
from engine.catalog import display_name

STREAMS, BURSTS, ROUNDS = 16, 4, 3
TEXT_CHARS = 20_000
TRAIN_MINUTES = 1.0


def train_in_background(url: str) -> tuple[threading.Event, threading.Event]:
    """A /train call over HTTP in a thread: (set once its first point has come, set once it has ended)."""
    pointed, ended = threading.Event(), threading.Event()
    text = JAYCHOU.read_text(encoding="utf-8")[-TEXT_CHARS:]

    def run() -> None:
        try:
            with httpx.Client(base_url=url, timeout=DEADLINE) as http:
                call = http.post("gradio_api/call/train", json={"data": [text, "from scratch", "lstm", "small",
                                                                         TRAIN_MINUTES, "bench"]})
                with http.stream("GET", f"gradio_api/call/train/{call.json()['event_id']}",
                                 timeout=10 * 60) as events:
                    for line in events.iter_lines():
                        if line.startswith("data: ") and '"point"' in line:
                            pointed.set()
                        if line.startswith("event: error"):
                            raise RuntimeError(f"the training failed: {line}")
        finally:
            pointed.set()
            ended.set()

    threading.Thread(target=run, daemon=True).start()
    return pointed, ended


async def bursts(url: str, variants: list[str], round_: int) -> dict:
    visitors = [httpx.AsyncClient(base_url=url, timeout=DEADLINE, verify=SSL_CONTEXT,
                                  headers={"x-visitor": f"visitor-{k}"}) for k in range(STREAMS)]
    await burst(visitors, variants, STREAMS, 0)  # warm-up: every visitor's session
    runs = [await burst(visitors, variants, STREAMS, 1000 * round_ + STREAMS * b) for b in range(BURSTS)]
    for http in visitors:
        await http.aclose()
    return {"results": [r for run in runs for r in run["results"]],
            "chars_per_s": statistics.mean(run["chars_per_s"] for run in runs)}


def main() -> None:
    sources = list(map(str, MODELS))
    variants = [display_name(s, sources) for s in sources]
    best = {}
    with tempfile.TemporaryDirectory() as tmp:
        url, log = f"http://127.0.0.1:{(port := free_port())}/", Path(tmp) / "app.log"
        app = start_app("loop", port, log)
        try:
            wait_for(app, url, log)
            for round_ in range(ROUNDS):
                print(f"round {round_ + 1}: idle", flush=True)
                best["idle"] = better(best.get("idle"), asyncio.run(bursts(url, variants, round_)))
                print(f"round {round_ + 1}: one training", flush=True)
                pointed, ended = train_in_background(url)
                pointed.wait(120)
                best["one training"] = better(best.get("one training"), asyncio.run(bursts(url, variants, round_)))
                ended.wait(5 * 60)
        finally:
            app.terminate()
            app.wait(10)
    idle = p95([r["first"] for r in best["idle"]["results"]])
    print(f"\n{STREAMS} listeners at once on the five models, /generate 200 characters, {BURSTS} bursts; best of "
          f"{ROUNDS} rounds; the training: /train's defaults (small LSTM) on {TEXT_CHARS:,} characters\n")
    print("| setup | streams | failed | first update p50 | p95 | p95 vs idle | characters/s |")
    print("|---|---|---|---|---|---|---|")
    for setup, m in best.items():
        firsts = [r["first"] for r in m["results"]]
        print(f"| {setup} | {len(firsts)} | {sum(not r['ok'] for r in m['results'])} | {statistics.median(firsts):.3f} "
              f"| {p95(firsts):.3f} | {p95(firsts) / idle:.2f}x | {m['chars_per_s']:,.0f} |")
    print("\ntarget: the first update's p95 while training within 2x of idle")


if __name__ == "__main__":
    main()
