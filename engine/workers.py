"""The decoding loops in processes of their own, beside a server: `Decoder().loop(source, model)`, or
`shared_decoders(processes_for(device)).loop(source, model)` for the models spread over one process per core.

A web server and the loops in one process take turns at one interpreter lock, so on a CPU neither runs while the
other does; here the loops decode on cores of their own while the server answers on another (bench/app_latency.py). The
server's process keeps the model too (it checks each request's options at once, in the caller's thread, and scores
with it); the decoding process loads its own copy from the same source. The two talk over a socket
pair: requests and cancellations one way, each request's pieces the other, gathered for a few milliseconds into
one message. Both are this package's own objects, so pickle, multiprocessing's format, is safe here: nothing read
from a download goes through it.
"""
import contextlib
import itertools
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import cache
from multiprocessing.connection import Connection

import torch

from charrnn import Candidate, CharRNN, Options
from charrnn.form import Sequence

from . import memory
from .loop import END, ROWS, WAITING, Busy, Loop, Request, Serves, shared_worker

log = logging.getLogger(__name__)
GATHER = 0.002  # seconds of pieces in one message: the server's process wakes 500 times a second, not once a step
RESTARTS, RESTART_WINDOW = 3, 600.0  # a process that dies more often than this in 10 minutes is not started again


class DecoderGone(Busy):
    """The decoding process ended (killed, or out of memory) under a request, or for good: a refusal like Busy's."""


class Decoder:
    """The server's side: starts the decoding process, hands each request's pieces to its reader, and starts the
    process again, its models loaded anew, if it dies (what it was writing then ends with DecoderGone)."""

    def __init__(self):
        # Two locks: `sending` is taken first, around a send and what it registers, so that a message goes to the
        # process its requests were registered with; `lock` guards the requests and each loop's count of them.
        # Reading never waits for `sending`: a send that waits for the process to read cannot stop the process's
        # own sends being read.
        self.lock, self.sending = threading.Lock(), threading.Lock()
        self.requests: dict[int, RemoteRequest] = {}
        self.loops: dict[int, RemoteLoop] = {}
        self.ids = itertools.count()
        self.gone: DecoderGone | None = None
        self.deaths: list[float] = []
        with self.sending:
            self.start()

    def start(self) -> None:
        """A new decoding process with every loop's model (with self.sending held)."""
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "engine.workers", str(theirs.fileno())],
                                            pass_fds=[theirs.fileno()])
        finally:
            theirs.close()
        self.connection = Connection(ours.detach())
        threading.Thread(target=self.receive, args=(self.connection, self.process), name="decoding process",
                         daemon=True).start()
        with contextlib.suppress(OSError):  # a process that dies at once: its reader sees the end and says so
            for loop in list(self.loops.values()):
                self.connection.send(loop.load_message())

    def loop(self, source: str, model, rows: int = ROWS, waiting: int = WAITING) -> "RemoteLoop":
        """The decoding loop of the model loaded from source (the process loads it from there too)."""
        with self.sending:
            if self.gone:
                raise self.gone
            with self.lock:
                key = next(self.ids)
                self.loops[key] = loop = RemoteLoop(self, key, source, model, rows, waiting)
            with contextlib.suppress(OSError):  # the process has just died: the next one loads every loop's model
                self.connection.send(loop.load_message())
        return loop

    def submit(self, loop: "RemoteLoop", requests: list["RemoteRequest"], message) -> None:
        """Register the requests, or refuse them with Busy, and send the process what they ask."""
        with self.sending:
            if self.gone:
                raise self.gone
            with self.lock:
                if Busy.full(held := loop.open, len(requests), loop.rows, loop.most_waiting):
                    raise Busy.of(loop.rows, held)
                self.requests.update((r.id, r) for r in requests)
            try:
                self.connection.send(message)
            except OSError:  # the process has just died: its reader starts another
                with self.lock:
                    for request in requests:
                        self.forget(request)
                raise DecoderGone("The decoding process ended; try again in a moment.") from None

    def cancel(self, request: "RemoteRequest") -> None:
        with self.sending:
            with self.lock:
                was_open = self.forget(request)
            if was_open and not self.gone:
                with contextlib.suppress(OSError):  # a process that has ended writes nothing more for it
                    self.connection.send(("cancel", [request.id]))

    def receive(self, connection: Connection, process: subprocess.Popen) -> None:
        """Until this process ends: each message's pieces to their requests."""
        while True:
            try:
                items = connection.recv()
            except (EOFError, OSError):
                return self.end(connection, process)
            with self.lock:
                readers = [(self.requests.get(i), item) for i, item in items]
                for request, item in readers:
                    if request is not None and not isinstance(item, list):
                        self.forget(request)
            for request, item in readers:
                if request is not None:
                    request.put(item)

    def forget(self, request: "RemoteRequest") -> bool:
        """Whether the request was still open (with self.lock held)."""
        return self.requests.pop(request.id, None) is not None

    def close(self) -> None:
        """Stop the decoding process for good: its open requests end with DecoderGone, new ones are refused."""
        with self.sending:
            self.gone = DecoderGone("The decoding process has been stopped.")
            if not self.connection.closed:
                # A shutdown, not a close: it wakes this side's reader too, and the process reads the end of its input.
                with socket.fromfd(self.connection.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as ours:
                    ours.shutdown(socket.SHUT_RDWR)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def end(self, connection: Connection, process: subprocess.Popen) -> None:
        """The process ended: its requests end with DecoderGone and, unless it was closed or keeps dying, another
        process takes over."""
        status = process.wait()
        left = []
        try:
            with self.sending:
                connection.close()
                with self.lock:
                    left, self.requests = list(self.requests.values()), {}
                now = time.monotonic()
                self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW] + [now]
                if not self.gone and len(self.deaths) <= RESTARTS:
                    log.error("the decoding process ended (exit status %s); starting another", status)
                    self.start()
                elif not self.gone:
                    log.error("the decoding process ended (exit status %s), %d times in %.0f s; not starting another",
                              status, len(self.deaths), RESTART_WINDOW)
                    self.gone = DecoderGone("The decoding process has ended for good; restart the app to write again.")
        except Exception:  # another process could not be started (no memory left): none will be
            log.exception("could not start another decoding process")
            self.gone = DecoderGone("The decoding process has ended for good; restart the app to write again.")
        finally:
            lost = self.gone or DecoderGone("The decoding process ended while writing this; try again.")
            for request in left:
                request.put(lost)


class Decoders:
    """Decoding processes, one per core at most, the models dealt out among them in turn as their loops are made
    (each process is started with its first model). On a CPU one process's loops left part of a core idle in a
    burst while the server's process used part of the other, so a process a core serves more (bench/app_latency.py,
    docs/results.md). On a GPU one process steps every loop there."""

    def __init__(self, size: int):
        self.size, self.started, self.dealt, self.lock = size, [], 0, threading.Lock()

    def loop(self, source: str, model, rows: int = ROWS, waiting: int = WAITING) -> "RemoteLoop":
        """The decoding loop of the model loaded from source, in the next process's turn."""
        with self.lock:
            k, self.dealt = self.dealt % self.size, self.dealt + 1
            if k == len(self.started):
                self.started.append(Decoder())
            decoder = self.started[k]
        return decoder.loop(source, model, rows, waiting)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS: no


def processes_for(device: torch.device) -> int:
    """How many decoding processes serve best: one on a GPU, one per core otherwise."""
    return 1 if device.type == "cuda" else cores()


@cache
def shared_decoders(size: int) -> Decoders:
    """The app's decoding processes, at most size of them."""
    return Decoders(size)


class RemoteRequest(Request):
    """A request whose pieces come from the decoding process."""

    def __init__(self, loop: "RemoteLoop", id_: int, prefix: str, every: Callable[[], float] | None):
        super().__init__(prefix, None, every)
        self.loop, self.id, self.result = loop, id_, None

    def put(self, item) -> None:
        if isinstance(item, Candidate):  # the last message: what it wrote and its log-probability
            self.result, item = item, END
        super().put(item)

    def cancel(self) -> None:
        super().cancel()
        self.loop.decoder.cancel(self)

    def candidate(self) -> Candidate:
        return self.result


class RemoteLoop(Serves):
    """Loop's submit and candidates, decoded in the decoding process."""

    def __init__(self, decoder: Decoder, key: int, source: str, model, rows: int, waiting: int):
        self.decoder, self.key, self.source, self.model = decoder, key, source, model
        self.rows, self.most_waiting = rows, waiting

    @property
    def open(self) -> int:
        """Requests submitted to this loop and not yet ended or cancelled."""
        return sum(r.loop is self for r in list(self.decoder.requests.values()))

    def submit(self, prefixes: list[str], length: int, options: list[Options], details: bool = False,
               every: Callable[[], float] | None = None) -> list[RemoteRequest]:
        """As Loop.submit: bad options raise ValueError here, a full loop Busy."""
        for prefix, option in zip(prefixes, options, strict=True):
            Sequence(self.model, prefix, length, option, details)  # raises what the loop would, but here and now
        requests = [RemoteRequest(self, next(self.decoder.ids), p, every) for p in prefixes]
        self.decoder.submit(self, requests, ("submit", self.key, [(r.id, r.prefix, length, o, details)
                                                                  for r, o in zip(requests, options)]))
        return requests

    def load_message(self) -> tuple:
        return "load", self.key, self.source, str(self.model.device), self.rows, self.most_waiting


class ForwardedRequest(Request):
    """The decoding process's side of a RemoteRequest: what the loop puts in goes out to the server."""

    def __init__(self, outbox: "Outbox", id_: int, prefix: str, sequence: Sequence):
        super().__init__(prefix, sequence)
        self.outbox, self.id = outbox, id_

    def put(self, item) -> None:
        if item is END:
            item = self.candidate()
        elif isinstance(item, BaseException):
            item = sendable(item)
        self.outbox.add(self, item)


def sendable(error: BaseException) -> BaseException:
    """The error itself where it pickles (ValueError and Busy, which the page shows as refusals), else its words."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"decoding failed: {error!r}")


class Outbox:
    """What the decoding process sends: pieces gathered for GATHER seconds."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.loops: dict[int, Loop] = {}
        self.requests: dict[int, ForwardedRequest] = {}  # those not yet ended, to cancel
        self.items, self.lock, self.last = [], threading.Lock(), 0.0

    def add(self, request: ForwardedRequest, item) -> None:
        with self.lock:
            self.items.append((request.id, item))
            if not isinstance(item, list):
                self.requests.pop(request.id, None)

    def flush(self, now: bool = False) -> None:
        """Send what has gathered, once GATHER seconds have passed (now: at once, or when no loop has work left)."""
        if not now and time.perf_counter() - self.last < GATHER and any(loop.held() for loop in list(self.loops.values())):
            return
        with self.lock:
            if self.items:
                self.connection.send(self.items)
            self.items, self.last = [], time.perf_counter()


def serve(connection: Connection) -> None:
    """The decoding process: load, submit and cancel as the server says, until it goes away."""
    outbox = Outbox(connection)
    unloadable: dict[int, Exception] = {}
    shared_worker().after_turns = lambda: exit_unless(outbox.flush)
    while True:
        try:
            command, *args = connection.recv()
        except (EOFError, OSError):  # the server has gone
            os._exit(0)
        if command == "load":
            key, source, device, rows, waiting = args
            try:
                model = CharRNN.from_pretrained(source).to(torch.device(device))
                model.generate("", 2)  # the first decode is several times slower than the next
                outbox.loops[key] = Loop(model, rows, waiting)
            except Exception as e:  # the server loaded it: this is rare (the folder changed), and said to each request
                log.exception("the decoding process could not load %s", source)
                unloadable[key] = e
        elif command == "submit":
            key, wanted = args
            new = [ForwardedRequest(outbox, i, prefix, None) for i, prefix, *_ in wanted]
            try:
                if key in unloadable:
                    raise unloadable[key]
                loop = outbox.loops[key]
                for request, (_, prefix, length, o, details) in zip(new, wanted):
                    request.sequence = Sequence(loop.model, prefix, length, o, details)
                outbox.requests.update((r.id, r) for r in new)
                loop.admit(new)
            except Exception as e:  # Busy: the server counted a cancelled request as gone a step before the loop did
                for request in new:
                    request.put(e)
        elif command == "cancel":
            for i in args[0]:
                if (request := outbox.requests.pop(i, None)) is not None:
                    request.cancel()
        outbox.flush(now=True)


def exit_unless(sends: Callable[[], None]) -> None:
    """Send, or end the process: a worker thread that died of a failed send would leave its readers waiting, and
    the server starts another process when this one ends."""
    try:
        sends()
    except Exception:
        log.exception("the decoding process could not send; it ends")
        os._exit(1)


if __name__ == "__main__":
    memory.bound_primitive_cache()
    fd = int(sys.argv[1])
    os.set_inheritable(fd, False)  # no process started from this one may hold the server's socket open
    serve(Connection(fd))
