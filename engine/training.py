"""The models visitors train in the page: each training in a process of its own (at a lower priority, with few of
torch's threads), at most `slots` at once and the others waiting their turn in line; each session's trained models
kept apart from every other session's, and deleted a stated time after the session ends.

    trained = Trained(root, slots=1)
    training = trained.start(session, config)     # a training.train.TrainConfig, its corpus and out under root
    for event in training.events(): ...            # waiting (its place), start, point, saving, done or failed
    training.stop()                                # end it at the next step, keeping the best weights measured
    trained.end(session)                           # the tab closed: its trainings cancelled, its models deleted later

The training process talks JSON lines: the settings in, one line; then "stop" (a line) or the end of its input,
which cancels it (so it ends with the server that started it); its events out, one a line.
"""
import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

import spaces

from charrnn import CharRNN, limits
from charrnn.counts import BIGRAM_NAME
from charrnn.lexicon import LEXICON_NAME
from charrnn.loading import is_next_line
from charrnn.names import METRICS_NAME

from .catalog import ALONE, Variant, read_bigram, read_metrics
from .workers import cores

log = logging.getLogger(__name__)
NICE = 10  # the training process's priority below the server's and the decoding processes'
KEEP_ENDED = 3600.0  # seconds a session's trained folders stay after the session ends (its tab closed)
KEEP_LONGEST = 24 * 3600.0  # seconds any trained folder stays, its session ended or not (an API client never says)
MOST_PER_SESSION = 3  # trained models a session keeps: a fourth replaces the oldest
SWEEP_EVERY = 60.0  # seconds
WAIT_EVENT = 1.0  # seconds between the places in line a waiting training reports
MOST_WAITING = 8  # trainings in line at most: each waits in a thread of the web server's
ZERO_GPU_MINUTES = 4.0  # the longest budget on ZeroGPU: a GPU is lent for about 5 minutes at most
# What a trained folder holds (hub_card writes the card and its curve): the only files taken from an uploaded zip.
TRAINED_FILES = {"config.json", "model.safetensors", BIGRAM_NAME, LEXICON_NAME, METRICS_NAME, "README.md",
                 "training_curve.png"}


def default_slots() -> int:
    """Trainings at once: one for every two cores, so that writing keeps cores of its own."""
    return max(1, cores() // 2)


def training_threads() -> int:
    """Every core: at its lower priority the training takes what the server and the decoding processes leave."""
    return cores()


class LineFull(ValueError):
    """Too many trainings wait already: the message says so."""


class Training:
    """One training: in line for a slot, then its process. events() drives it (from the caller's thread)."""

    def __init__(self, trained: "Trained", session: str, config, name: str):
        self.trained, self.session, self.config, self.name = trained, session, config, name
        self.process: subprocess.Popen | None = None
        self.stopping, self.cancelled, self.finished = threading.Event(), threading.Event(), False

    @property
    def folder(self) -> Path:
        return Path(self.config.out)

    def events(self) -> Iterator[dict]:
        """Its place in line every second while it waits; then the training's events (training.train: start,
        point, saving); then done (with the model's name in the session's lists) or failed (a message). Leaving
        the iteration cancels it."""
        try:
            while not self.trained.admitted(self, WAIT_EVENT):
                if self.cancelled.is_set():
                    yield {"event": "failed", "message": "The training was cancelled before it started."}
                    return
                yield {"event": "waiting", "place": self.trained.place(self)}
            if self.cancelled.is_set() or self.stopping.is_set():
                yield {"event": "failed", "message": "The training was stopped before it started."}
                return
            yield from self.run()
        finally:
            self.cancel()
            self.trained.release(self)

    def run(self) -> Iterator[dict]:
        failed = None
        for event in self.on_gpu_lent() if self.trained.zero_gpu else self.in_own_process():
            if event["event"] == "failed":
                failed = event
                continue
            yield event
        if self.cancelled.is_set():
            return
        if failed:
            yield failed
            return
        try:
            name = self.trained.add(self.session, self.folder, self.name)
        except (ValueError, OSError) as e:  # ModelFileError too: a folder the training left unreadable
            yield {"event": "failed", "message": f"The trained model could not be loaded: {e}."}
            return
        self.finished = True
        yield {"event": "done", "model": name, "folder": str(self.folder)}

    def in_own_process(self) -> Iterator[dict]:
        """The training's events from a process of its own (a crash is a failed event)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.training", str(training_threads())], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", preexec_fn=lower_priority)
        errors = collections.deque(maxlen=20)  # its last words, for a crash's message
        threading.Thread(target=lambda: errors.extend(self.process.stderr), name="training errors",
                         daemon=True).start()
        self.send(json.dumps(dataclasses.asdict(self.config)))
        if self.stopping.is_set():
            self.send("stop")
        for line in self.process.stdout:
            yield json.loads(line)
        code = self.process.wait()
        if code and not self.cancelled.is_set():
            yield {"event": "failed", "message": crash_message(code, errors)}

    def on_gpu_lent(self) -> Iterator[dict]:
        """On ZeroGPU: the training's events from the GPU worker ZeroGPU lends for its budget; Stop reaches it
        through a file beside its folder."""
        if self.stopping.is_set():
            self.stop_file.touch()
        yield from train_on_gpu(dataclasses.asdict(self.config))

    @property
    def stop_file(self) -> Path:
        return Path(f"{self.config.out}.stop")

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):  # an ended process reads nothing more
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def stop(self) -> None:
        """End it at its next step; it keeps the best weights measured and is saved."""
        self.stopping.set()
        if self.process is not None:
            self.send("stop")
        elif self.trained.zero_gpu:
            self.stop_file.touch()

    def cancel(self) -> None:
        """End it now, saving nothing: its process is killed (or it leaves the line)."""
        if self.finished:
            return
        self.cancelled.set()
        if self.trained.zero_gpu:  # the GPU worker stops at its next step; what it saves is deleted with the session
            self.stop_file.touch()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def lower_priority() -> None:
    os.nice(NICE)


def crash_message(code: int, errors: Sequence[str]) -> str:
    if code < 0:
        why = "it was killed (out of memory?)" if code == -9 else f"it ended on signal {-code}"
    else:
        why = errors[-1].strip() if errors else f"it ended with status {code}"
    return f"The training failed: {why}. Its slot is free again; try a smaller size or a shorter text."


class Trained:
    """The trainings of every session, the line they wait in, and each session's trained models."""

    def __init__(self, root: Path, slots: int | None = None, device: str = "cpu", zero_gpu: bool = False):
        """zero_gpu: train in the GPU worker ZeroGPU lends (spaces.GPU), not in a process of this server's."""
        self.root, self.slots, self.device, self.zero_gpu = Path(root), slots or default_slots(), device, zero_gpu
        empty_root(self.root)
        self.lock = threading.Condition()
        self.line: list[Training] = []  # waiting, first come first
        self.running: list[Training] = []
        self.models: dict[str, dict[str, Variant]] = {}  # session -> its trained models by name
        self.ended: dict[str, float] = {}  # session -> when it ended
        self.numbers = itertools.count(1)
        threading.Thread(target=self.sweeping, name="trained folders", daemon=True).start()

    def folder_of(self, session: str) -> Path:
        return self.root / re.sub(r"[^A-Za-z0-9_-]", "_", session or "anonymous")[:64]

    def start(self, session: str, config, name: str, text: str) -> Training:
        """A training of config on text for session, its model to be listed as name; the text, the model and its
        checkpoint go in the session's folder. It waits in line until events() is iterated and a slot is free;
        LineFull where MOST_WAITING wait already."""
        out = self.folder_of(session) / f"{next(self.numbers)}"
        config = dataclasses.replace(config, corpus=f"{out}.txt", out=str(out), checkpoint=f"{out}.pt",
                                     progress=False, device="auto" if self.zero_gpu else self.device)
        training = Training(self, session, config, name)
        with self.lock:
            if len(self.line) >= MOST_WAITING:
                raise LineFull(f"{len(self.line)} trainings are waiting for their turn already; try again in a few "
                               "minutes")
            self.ended.pop(session, None)
            self.line.append(training)
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{out}.txt").write_text(text, encoding="utf-8")
        return training

    def admitted(self, training: Training, wait: float) -> bool:
        """Whether training holds a slot, waiting up to `wait` seconds for one."""
        with self.lock:
            if training in self.running:
                return True
            self.lock.wait_for(lambda: self.line and self.line[0] is training and len(self.running) < self.slots
                               or training.cancelled.is_set(), wait)
            if training.cancelled.is_set() or not (self.line and self.line[0] is training
                                                   and len(self.running) < self.slots):
                return False
            self.line.pop(0)
            self.running.append(training)
            return True

    def place(self, training: Training) -> int:
        """1 for the next to start."""
        with self.lock:
            return self.line.index(training) + 1 if training in self.line else 0

    def release(self, training: Training) -> None:
        with self.lock:
            for queue in (self.line, self.running):
                if training in queue:
                    queue.remove(training)
            self.lock.notify_all()
        if not training.finished:
            shutil.rmtree(training.folder, ignore_errors=True)
        for path in (training.config.checkpoint, training.config.corpus, training.stop_file):
            Path(path).unlink(missing_ok=True)

    def running_for(self, session: str) -> list[Training]:
        with self.lock:
            return [t for t in self.line + self.running if t.session == session]

    def add(self, session: str, folder: Path, name: str) -> str:
        """A trained folder joins session's models, loaded to write through (decoded per request, in this
        process); returns its name there, made unique. The oldest goes where the session has MOST_PER_SESSION."""
        model = CharRNN.from_pretrained(folder)
        source = str(folder)
        with self.lock:
            own = self.models.setdefault(session, {})
            name = unique_name(name, own)
            own[name] = Variant(source, model, read_metrics(source), read_bigram(source))
            while len(own) > MOST_PER_SESSION:
                forget(own.pop(next(iter(own))))
        return name

    def zipped(self, session: str, name: str) -> Path:
        """The session's model as a zip of its Hub-ready folder (a folder named after it inside), made once."""
        variant = self.models_of(session)[name]
        folder = Path(variant.source)
        inside = re.sub(r"[^A-Za-z0-9_.-]", "-", name).strip("-.") or "charrnn-model"
        archive = folder.with_name(f"{folder.name}-zip") / f"{inside}.zip"
        if not archive.is_file():
            archive.parent.mkdir(exist_ok=True)
            with zipfile.ZipFile(archive.with_suffix(".tmp"), "w", zipfile.ZIP_DEFLATED) as z:
                for path in sorted(folder.iterdir()):
                    z.write(path, f"{inside}/{path.name}")
            os.replace(archive.with_suffix(".tmp"), archive)
        return archive

    def unpack(self, session: str, archive: Path, name: str) -> str:
        """A zip of a trained folder (as zipped() makes) joins session's models; returns its name there. Only the
        files a trained folder has are taken, within limits.TRAINED_ZIP_BYTES unpacked, and the weights are read as
        safetensors: ModelFileError or a ValueError says what is wrong with it."""
        folder = self.folder_of(session) / f"{next(self.numbers)}"
        try:
            take_trained_files(Path(archive), folder)
            if is_next_line(str(folder)):
                raise ValueError("this zip holds a next-line model; only character models are written with and "
                                 "trained on here")
            return self.add(session, folder, name)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def models_of(self, session: str) -> dict[str, Variant]:
        with self.lock:
            return dict(self.models.get(session, {}))

    def end(self, session: str) -> None:
        """The session's tab closed: its trainings are cancelled, its models deleted KEEP_ENDED seconds later."""
        for training in self.running_for(session):
            training.cancel()
        with self.lock:
            self.ended[session] = time.monotonic()
            self.lock.notify_all()

    def sweeping(self) -> None:
        while True:
            time.sleep(SWEEP_EVERY)
            try:
                self.sweep(time.monotonic(), time.time())
            except Exception:  # a sweeper that died would let the disk fill, unseen
                log.exception("sweeping trained folders failed; again in %.0f s", SWEEP_EVERY)

    def sweep(self, now: float, wall: float) -> None:
        """Forget the sessions ended KEEP_ENDED ago, and every model older than KEEP_LONGEST."""
        with self.lock:
            for session, ended in list(self.ended.items()):
                if now - ended >= KEEP_ENDED:
                    del self.ended[session]
                    for variant in self.models.pop(session, {}).values():
                        forget(variant)
                    shutil.rmtree(self.folder_of(session), ignore_errors=True)
            for own in self.models.values():
                for name, variant in list(own.items()):
                    if wall - Path(variant.source).stat().st_mtime >= KEEP_LONGEST:
                        forget(own.pop(name))


def empty_root(root: Path) -> None:
    """root made empty for this server's sessions (none outlives the server that made it): a folder this class made
    before, marked so, is emptied; any other folder with files in it is refused, never deleted."""
    marker = root / ".charrnn-trained"
    if root.exists() and any(root.iterdir()) and not marker.exists():
        raise ValueError(f"{root} has files in it that are not trained models of charrnn's: give the trained models "
                         "a folder of their own (CHARRNN_TRAINED_DIR)")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    marker.touch()


class StopFile:
    """A stop signal another process can give: set once the file exists (train checks it after every step)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def is_set(self) -> bool:
        return self.path.exists()


def gpu_seconds(config: dict) -> int:
    """What a training asks ZeroGPU for: its budget, and a minute to start, measure and save."""
    return int(60 * config["max_minutes"]) + 60


@spaces.GPU(duration=gpu_seconds)
def train_on_gpu(config: dict) -> Iterator[dict]:
    """A training's events, on ZeroGPU in the GPU worker it lends for gpu_seconds (elsewhere, in this process):
    the training runs in a thread, its events passed on as they come; a file beside its folder stops it."""
    from training.train import TrainConfig

    settings = TrainConfig(**config)
    events = queue.Queue()

    def run() -> None:
        try:
            run_training(settings, events.put, StopFile(f"{settings.out}.stop"))
        except Exception as e:  # the thread's end must reach the reader, whatever ended it
            events.put({"event": "failed", "message": f"The training failed: {type(e).__name__}: {e}."})
        finally:
            events.put(None)

    threading.Thread(target=run, name="training on the GPU", daemon=True).start()
    while (event := events.get()) is not None:
        yield event


def take_trained_files(archive: Path, folder: Path) -> None:
    """The files of a trained folder out of an uploaded zip into folder: by their names alone (no path of the zip's
    is followed), each a name a trained folder has, all within limits.TRAINED_ZIP_BYTES."""
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir() and PurePosixPath(m.filename).name in TRAINED_FILES]
            if not any(PurePosixPath(m.filename).name == "model.safetensors" for m in members):
                raise ValueError("this zip holds no trained model: it needs model.safetensors and config.json, as "
                                 "a downloaded one has")
            if sum(m.file_size for m in members) > limits.TRAINED_ZIP_BYTES:
                raise ValueError(f"this zip unpacks to more than {limits.TRAINED_ZIP_BYTES:,} bytes")
            folder.mkdir(parents=True)
            for member in members:
                with z.open(member) as source, open(folder / PurePosixPath(member.filename).name, "wb") as target:
                    shutil.copyfileobj(source, target)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
        raise ValueError(f"this is not a zip that can be read ({e})") from None


def forget(variant: Variant) -> None:
    ALONE.pop(variant.source, None)
    for folder in (variant.source, f"{variant.source}-zip"):
        shutil.rmtree(folder, ignore_errors=True)


def unique_name(name: str, taken) -> str:
    if name not in taken:
        return name
    return next(f"{name} ({k})" for k in itertools.count(2) if f"{name} ({k})" not in taken)


def run_training(settings, report, stop) -> None:
    """training.train.train, then the model's card and curve (for the zip and the Hub); a text or a start the
    training cannot use (a ValueError) is reported as a failed event that says why."""
    from hub_card.write import write_card
    from training.train import train

    try:
        train(settings, report, stop)
        write_card(settings.out)
    except ValueError as e:
        report({"event": "failed", "message": f"{str(e)[:1].upper()}{str(e)[1:]}."})


def serve() -> None:
    """The training process: settings from the first line of input, events out, a stop or the end of input in."""
    import torch
    from training.train import TrainConfig

    torch.set_num_threads(int(sys.argv[1]))
    config = TrainConfig(**json.loads(sys.stdin.readline()))
    stop = threading.Event()

    def listen() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                stop.set()
        os._exit(0)  # the end of input: the server cancelled this training, or is gone itself

    events = sys.stdout
    sys.stdout = sys.stderr  # whatever else prints (a library's notice) goes with the errors, not among the events

    def report(event: dict) -> None:
        print(json.dumps(event, ensure_ascii=False), file=events, flush=True)

    threading.Thread(target=listen, name="orders", daemon=True).start()
    run_training(config, report, stop)
    os._exit(0)


if __name__ == "__main__":
    from . import memory
    memory.bound_primitive_cache()
    serve()
