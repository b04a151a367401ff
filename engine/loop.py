"""Continuous batching, as TGI and vLLM serve: one decoding loop per model steps every active request together.

A request joins at the next step (the prefixes of all that join then primed in one pass) and leaves as soon as it
is finished or its reader stops reading, so a Stop frees its row at once. Every request keeps its own options and
random stream (decoding.Batch), so a seeded request writes the same text alone or batched. One thread steps every
model's loop in turn and sleeps while none has work; at most `rows` requests of a model decode at once, `waiting`
more wait for a row, and beyond that a request is refused with Busy. A reader may let pieces gather between reads
(`every`), so that it wakes once an update rather than once a step.
"""
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from functools import cache

import torch

from charrnn import Candidate, Options
from charrnn.decoding import Batch
from charrnn.form import Sequence

log = logging.getLogger(__name__)
ROWS = 64  # a batch decodes many times the characters per second of one stream (bench/decoding_speed.py)
WAITING = 64
# Seconds a loop keeps the thread (several steps of a small batch, one of a large): five models stepped one step
# each in turn read their weights from memory at every step; a turn of a few steps keeps them in the core's cache
# (bench/app_latency.py; docs/results.md has what 1, 2 and 5 ms gave).
TURN = 0.002
END = None  # what a request's queue gets after its last pieces


class Busy(RuntimeError):
    """Every row and every waiting place of the loop is taken."""

    @staticmethod
    def full(held: int, new: int, rows: int, waiting: int) -> bool:
        """Whether new requests find no place beside the held ones (writing or waiting) in rows and waiting places."""
        return held + new > rows + waiting

    @classmethod
    def of(cls, rows: int, held: int) -> "Busy":
        return cls(f"The server is busy: all {rows} rows of this model are writing and {max(0, held - rows)} "
                   "requests are waiting. Try again in a moment.")


class Request:
    """One sequence being served: the loop puts in each step's new pieces, the reader takes them out."""

    def __init__(self, prefix: str, sequence: Sequence, every: Callable[[], float] | None = None):
        """every: the seconds to let pieces gather between two reads, asked anew after each (None: read at every
        step). A reader that wakes at every step of a busy loop costs the server more than the step itself."""
        self.prefix, self.sequence, self.every = prefix, sequence, every
        self.pieces = queue.SimpleQueue()  # lists of pieces, then END or the exception that ended it
        self.ended = threading.Event()  # the last item is in: a gathering reader need not wait any longer
        self.cancelled = False

    def put(self, item) -> None:
        """Pieces from the loop, or END, or the exception that ended the request."""
        self.pieces.put(item)
        if not isinstance(item, list):
            self.ended.set()

    def __iter__(self) -> Iterator[list]:
        """Lists of pieces as they come, all that is ready in one list. A reader that stops early (a Stop, a closed
        connection) cancels the request: the loop drops its row before the next step."""
        try:
            while True:
                ready = [self.pieces.get()]
                while isinstance(ready[-1], list) and not self.pieces.empty():
                    ready.append(self.pieces.get_nowait())
                pieces = [piece for item in ready if isinstance(item, list) for piece in item]
                if pieces:
                    yield pieces
                if ready[-1] is END:  # the first end counts: a failing step may still put its error after it
                    return
                if isinstance(ready[-1], BaseException):
                    raise ready[-1]
                if self.every is not None:
                    self.ended.wait(self.every())  # the next steps' pieces gather meanwhile
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Leave the loop: its next step drops the row."""
        self.cancelled = True

    def candidate(self) -> Candidate:
        return self.sequence.candidate()


class Worker:
    """The one thread that steps every model's loop, each in turn while any has requests. One thread for all, not
    one each: on a CPU, threads stepping small batches side by side spend more on contending for the interpreter
    than on decoding (bench/app_latency.py), and a step this small gains nothing from a second BLAS thread."""

    def __init__(self):
        self.loops: list[Loop] = []
        self.wake = threading.Condition()  # also guards every loop's waiting requests
        self.after_turns: Callable[[], None] = lambda: None  # called after each round of turns
        self.thread = threading.Thread(target=self.run, name="decoding loops", daemon=True)
        self.thread.start()

    def run(self) -> None:
        torch.set_num_threads(1)  # this thread's own setting: its OpenMP threads would spin on the cores the server needs
        while True:
            with self.wake:
                while not (turns := [loop for loop in self.loops if loop.active or loop.waiting]):
                    self.wake.wait()  # idle: asleep until a request comes
            for loop in turns:
                ends = time.perf_counter() + TURN
                loop.turn()
                while loop.active and time.perf_counter() < ends:
                    loop.turn()
            self.after_turns()


@cache
def shared_worker() -> Worker:
    return Worker()


class Serves:
    """What a loop offers beyond submit: CharRNN's candidates through it."""

    def candidates(self, prefix: str, n: int, length: int, seed: int | None = None, **options) -> list[Candidate]:
        """CharRNN.candidates through the loop: n rows, row i seeded with seed + i, best first."""
        seeds = [seed + i if isinstance(seed, int) else seed for i in range(n)]
        requests = self.submit([prefix] * n, length, [Options(seed=s, **options) for s in seeds])
        try:
            for request in requests:
                request.ended.wait()
                for _ in request:  # all of it at once, or the error that ended it
                    pass
        finally:
            for request in requests:
                request.cancel()
        return sorted((r.candidate() for r in requests), key=lambda c: -c.mean_logprob)


class Loop(Serves):
    """The decoding loop of one model: its batch, stepped by the shared worker thread."""

    def __init__(self, model, rows: int = ROWS, waiting: int = WAITING):
        self.model, self.rows, self.most_waiting = model, rows, waiting
        self.batch = Batch(model, scored=True)  # candidates are ranked by their log-probability
        self.active: list[Request] = []
        self.waiting: deque[Request] = deque()
        worker = shared_worker()
        self.wake, self.thread = worker.wake, worker.thread
        with self.wake:
            worker.loops.append(self)

    def submit(self, prefixes: list[str], length: int, options: list[Options], details: bool = False,
               every: Callable[[], float] | None = None) -> list[Request]:
        """One request per prefix, joining together (every: see Request). Options are checked here, in the caller's
        thread: a bad one raises ValueError at once; a full loop raises Busy."""
        requests = [Request(p, Sequence(self.model, p, length, o, details), every)
                    for p, o in zip(prefixes, options, strict=True)]
        self.admit(requests)
        return requests

    def admit(self, requests: list[Request]) -> None:
        """Let these requests wait for rows, or raise Busy if there is no place for all of them."""
        with self.wake:
            if Busy.full(held := self.held(), len(requests), self.rows, self.most_waiting):
                raise Busy.of(self.rows, held)
            self.waiting.extend(requests)
            self.wake.notify()

    def held(self) -> int:
        """Requests writing or waiting, less those cancelled (a waiting one may wait for a row to be dropped)."""
        return sum(not r.cancelled for r in self.active) + sum(not r.cancelled for r in self.waiting)

    def turn(self) -> None:
        """One step of this loop, with the requests that a free row lets join first."""
        with self.wake:
            free = self.rows - len(self.active)
            joining = [self.waiting.popleft() for _ in range(min(free, len(self.waiting)))]
        try:
            self.serve(joining)
        except Exception as e:  # a bug must not leave readers waiting forever: each gets the error
            log.exception("decoding loop failed; its requests end with the error")
            for request in self.active + joining:
                request.put(e)
            self.active, self.batch = [], Batch(self.model, scored=True)

    def serve(self, joining: list[Request]) -> None:
        """Drop the cancelled, join the new, decode one step, hand out its pieces, drop the finished."""
        self.drop([r for r in self.active if r.cancelled])
        joining = [r for r in joining if not r.cancelled]
        self.batch.join([r.prefix for r in joining], [r.sequence for r in joining])
        self.active += joining
        if not self.active:
            return
        finished = []
        for request, pieces in zip(self.active, self.batch.step()):
            if pieces:
                request.put(pieces)
            if request.sequence.done:
                request.put(END)
                finished.append(request)
        self.drop(finished)

    def drop(self, requests: list[Request]) -> None:
        if requests:
            gone = {id(r) for r in requests}
            self.batch.leave([row for row, r in enumerate(self.active) if id(r) in gone])
            self.active = [r for r in self.active if id(r) not in gone]
