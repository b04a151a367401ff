"""Latency of the demo as its users see it: `python -m bench.app_latency`.

Starts `app.py` in its own process (as `python app.py` would run) on models/jaychou-rnn, or on a small RNN trained
here first when that folder is missing, and measures through gradio_client:
  - one client, one request after another: time from submit to the first streamed update, and to the end;
  - 16 clients at once, 200 characters each: every stream must complete; time to first update and to the end.
Targets (issue 4): first update p95 <= 0.3 s for one client; with 16 at once none fails and p95 < 1.5 s.
"""
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

from charrnn.catalog import display_name  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "jaychou-rnn"
LENGTH = 200
SEQUENTIAL = 30
CONCURRENT = 16
DEADLINE = 60.0
# gradio_client opens a new httpx connection per request, and each builds an SSL context (about 30 ms of CPU) even
# for http://; sharing one keeps the client's cost, on the same 2 cores, out of the server's latency.
SSL_CONTEXT = ssl.create_default_context()


def find_or_train_model(workdir: Path) -> Path:
    if (MODEL / "model.safetensors").is_file():
        return MODEL
    from training.train import DATA_DIR, TrainConfig, train

    corpus = workdir / "lyrics.txt"
    corpus.write_text((DATA_DIR / "jaychou_lyrics.txt").read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    out = workdir / "jaychou-rnn"
    print(f"{MODEL} not found: training a small RNN (same shape as the default) into {out} ...", flush=True)
    train(TrainConfig(corpus=str(corpus), out=str(out), cell="rnn", epochs=1, progress=False,
                      checkpoint=str(workdir / "ckpt.pt")))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "CHARRNN_MODELS": str(model), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(app: subprocess.Popen, url: str, log: Path, deadline: float = 120.0) -> Client:
    end = time.monotonic() + deadline
    while True:
        try:
            return Client(url, verbose=False, ssl_verify=SSL_CONTEXT)
        except Exception:
            if app.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the app did not start:\n{log.read_text()}") from None
            time.sleep(0.5)


def timed_requests(clients: list[Client], variant: str) -> list[dict]:
    """One request per client, all at once: seconds from each submit to its first streamed update and to its end.

    One thread polls every job (a thread per job polling would cost the server more CPU than it uses itself).
    """
    submitted, jobs = [], []
    for seed, client in enumerate(clients):
        submitted.append(time.perf_counter())
        jobs.append(client.submit(variant, "分开", LENGTH, 0.8, 0, 1, seed, api_name="/generate"))
    first, total = [None] * len(jobs), [None] * len(jobs)
    while None in total and time.perf_counter() - submitted[0] < DEADLINE:
        for k, job in enumerate(jobs):
            now = time.perf_counter() - submitted[k]
            if first[k] is None and job.outputs():
                first[k] = now
            if total[k] is None and job.done():
                total[k] = now
        time.sleep(0.005)
    return [{"first": f if f is not None else DEADLINE, "total": t if t is not None else DEADLINE,
             "ok": job.done() and job.exception() is None and len(job.outputs()[-1]) == LENGTH}
            for f, t, job in zip(first, total, jobs)]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def row(name: str, results: list[dict], target: str) -> str:
    firsts, totals = [r["first"] for r in results], [r["total"] for r in results]
    failed = sum(not r["ok"] for r in results)
    return (f"| {name} | {len(results)} | {failed} | {statistics.median(firsts):.3f} | {p95(firsts):.3f} | "
            f"{max(firsts):.3f} | {statistics.median(totals):.3f} | {p95(totals):.3f} | {target} |")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = find_or_train_model(Path(tmp))
        url, log = f"http://127.0.0.1:{(port := free_port())}/", Path(tmp) / "app.log"
        app = start_app(model, port, log)
        try:
            client = wait_for(app, url, log)
            variant = display_name(str(model))
            clients = [client] + [Client(url, verbose=False, ssl_verify=SSL_CONTEXT) for _ in range(CONCURRENT - 1)]
            for c in clients:  # each client's first request also opens its event stream
                timed_requests([c], variant)
            sequential = [timed_requests([client], variant)[0] for _ in range(SEQUENTIAL)]
            concurrent = timed_requests(clients, variant)
        finally:
            app.terminate()
            app.wait(10)

    print(f"\nmodel: {model}; {LENGTH} characters per request; seconds from submit\n")
    print("| scenario | requests | failed | first update p50 | p95 | max | complete p50 | p95 | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(row("1 client, sequential", sequential, "first update p95 <= 0.3"))
    print(row(f"{CONCURRENT} clients at once", concurrent, "none fails, first update p95 < 1.5"))


if __name__ == "__main__":
    main()
