"""How oneDNN's cache of LSTM primitives holds memory: `python -m bench.lstm_shapes`.

torch runs nn.LSTM on a CPU through oneDNN, which keeps a compiled primitive for each input shape it has run
(ONEDNN_PRIMITIVE_CACHE_CAPACITY of them, 1,024 by default). A server priming prefixes of every length meets a new
shape nearly every time. For each capacity, in a fresh process: the resident memory before and after 400 shapes
(lengths 1-1,200, one to four rows), and the time of one LSTM pass over a shape it has run before, against a cache
that keeps nothing. engine/memory.py sets PRIMITIVES.
"""
import os
import subprocess
import sys
import time

from bench.common import rss_mb
from engine.memory import PRIMITIVES

CAPACITIES = [1024, 16, PRIMITIVES, 0]


def measure() -> str:
    import torch
    torch.set_num_threads(1)
    lstm = torch.nn.LSTM(256, 512, batch_first=True).eval()
    times = []
    with torch.inference_mode():
        for n in (2, 256):  # a short prefix, a scoring chunk
            x = torch.randn(1, n, 256)
            lstm(x)
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(20):
                    lstm(x)
                best = min(best, (time.perf_counter() - started) / 20)
            times.append(best)
        before = rss_mb(os.getpid())
        for k, n in enumerate(range(1, 1201, 3)):
            lstm(torch.randn(1 + k % 4, n, 256))
    return f"{before:.0f} {rss_mb(os.getpid()):.0f} {times[0] * 1e3:.3f} {times[1] * 1e3:.2f}"


def main() -> None:
    print("| primitives kept | MB before | after 400 shapes | grew | a repeated 2-step pass ms | a repeated 256-step pass ms |")
    print("|---|---|---|---|---|---|")
    for capacity in CAPACITIES:
        env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(capacity)}
        out = subprocess.run([sys.executable, "-m", "bench.lstm_shapes", "--measure"], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        before, after, short, chunk = map(float, out)
        print(f"| {capacity:,} | {before:.0f} | {after:.0f} | {after - before:+.0f} | {short:.3f} | {chunk:.2f} |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--measure"]:
        print(measure())
    else:
        main()
