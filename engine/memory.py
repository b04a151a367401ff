"""What keeps a long-running process's memory bounded: oneDNN's cache of LSTM primitives (every process of the app),
and glibc's malloc in the web server (large freed buffers given back, few heaps, and the pages freed inside the heaps
returned from time to time; elsewhere, macOS or musl, there is nothing to do there)."""
import ctypes
import os
import time

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's malloc.h
try:
    LIBC = ctypes.CDLL("libc.so.6")
except OSError:
    LIBC = None
TRIM_EVERY = 10.0  # seconds at least between two trims (each holds malloc's locks a moment)
# oneDNN primitives kept: a prefix's length and how many are primed together make its shape, so requests bring new
# shapes without end; a few keep the repeated ones (a scoring chunk, a common prefix) from being built anew.
PRIMITIVES = 8


def bound_primitive_cache() -> None:
    """oneDNN, which runs torch's LSTM on a CPU, keeps a compiled primitive for each input shape it has run, up to
    1,024 of them, each holding its buffers: a decoding process priming prefixes of every length grew by hundreds of
    MB. Set before the first LSTM runs (oneDNN reads it then); processes started from this one inherit it."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(PRIMITIVES))


def return_freed_buffers() -> None:
    """Set once, before the server's threads start. glibc raises its mmap threshold to the largest buffer freed so
    far (up to 32 MiB); buffers below it then come from the heap, whose freed pages it seldom returns, so each large
    request (a long text to score, a refused huge body) left the server megabytes larger: the threshold is fixed at
    glibc's own default, 128 KiB. And each of the server's many threads would get a heap of its own (up to 8 per
    core), each keeping its own high-water mark: two heaps serve them all. (Not in the decoding processes: a step's
    buffers, the same sizes at every step, would be mapped anew each time; their few threads share few heaps.)"""
    if LIBC is not None:
        LIBC.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        LIBC.mallopt(M_ARENA_MAX, 2)


class Trimmer:
    """Gives the pages freed in the middle of malloc's heaps back to the system, at most every TRIM_EVERY seconds."""

    def __init__(self):
        self.trimmed = 0.0

    def due(self) -> bool:
        return LIBC is not None and time.monotonic() - self.trimmed >= TRIM_EVERY

    def trim(self) -> None:
        self.trimmed = time.monotonic()
        LIBC.malloc_trim(0)
