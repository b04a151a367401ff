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
import secrets
import shutil
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

import spaces
import torch

from charrnn import CharRNN, limits
from charrnn.counts import BIGRAM_NAME
from charrnn.lexicon import LEXICON_NAME
from charrnn.loading import is_next_line
from charrnn.names import METRICS_NAME

from .catalog import ALONE, Variant, read_bigram, read_metrics
from .workers import cores

log = logging.getLogger(__name__)
NICE = 10  # the training process's priority below the server's and the decoding processes'
SWEEP_EVERY = 60.0  # seconds
WAIT_EVENT = 1.0  # seconds between the places in line a waiting training reports
# What a trained folder holds (hub_card writes the card and its curve): the only files taken from an uploaded zip.
TRAINED_FILES = {"config.json", "model.safetensors", BIGRAM_NAME, LEXICON_NAME, METRICS_NAME, "README.md",
                 "training_curve.png"}


def default_slots() -> int:
    """Trainings at once: one for every two cores, so that writing keeps cores of its own."""
    return max(1, cores() // 2)


class Refused(ValueError):
    """A training that cannot start now (the line is full, the session trains already): the message says why."""


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
            while not self.trained.admitted(self, WAIT_EVENT) and not self.left():
                yield {"event": "waiting", "place": self.trained.place(self)}
            if self.left():
                yield {"event": "failed", "message": "The training left the line before it started."}
                return
            yield from self.run()
        finally:
            self.cancel()
            self.trained.release(self)

    def left(self) -> bool:
        """Stopped or cancelled: either takes a training out of the line."""
        return self.cancelled.is_set() or self.stopping.is_set()

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
        self.process = subprocess.Popen([sys.executable, "-m", "engine.training", str(cores())],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, encoding="utf-8")
        if self.cancelled.is_set():  # cancelled while it started: cancel() found no process to end
            self.cancel()
        errors = collections.deque(maxlen=20)  # its last words, for a crash's message
        threading.Thread(target=lambda: errors.extend(self.process.stderr), name="training errors",
                         daemon=True).start()
        self.send(json.dumps(dataclasses.asdict(self.config)))
        if self.stopping.is_set():
            self.send("stop")
        for line in self.process.stdout:
            try:
                yield json.loads(line)
            except ValueError:  # a line cut short by the process's end
                errors.append(f"an unreadable event: {line[:200]!r}")
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
        self.made: dict[str, float] = {}  # a model's folder -> when it was made (time.time())
        self.ended: dict[str, float] = {}  # session -> when it ended
        self.folders: dict[str, Path] = {}  # session -> its folder, under a name nobody can guess
        threading.Thread(target=self.sweeping, name="trained folders", daemon=True).start()

    @property
    def zips(self) -> Path:
        """Where the models' zips are, each in a folder nobody can guess: the only files served for download."""
        return self.root / "zips"

    def folder_of(self, session: str) -> Path:
        with self.lock:
            return self.folders.setdefault(session, self.root / secrets.token_urlsafe(16))

    def new_folder(self, session: str) -> Path:
        """A new folder name in the session's folder (not made yet)."""
        return self.folder_of(session) / secrets.token_urlsafe(8)

    def start(self, session: str, config, name: str, text: str) -> Training:
        """A training of config on text for session, its model to be listed as name; the text, the model and its
        checkpoint go in the session's folder. It waits in line until events() is iterated (at once: a training
        never iterated would hold its place) and a slot is free. Refused where the session trains already or
        limits.TRAININGS_WAITING wait."""
        out = self.new_folder(session)
        config = dataclasses.replace(config, corpus=f"{out}.txt", out=str(out), checkpoint=f"{out}.pt",
                                     progress=False, device="auto" if self.zero_gpu else self.device)
        training = Training(self, session, config, name)
        with self.lock:
            if any(t.session == session for t in self.line + self.running):
                raise Refused("This session is training already: Stop it first, or wait for it to end")
            if len(self.line) >= limits.TRAININGS_WAITING:
                raise Refused(f"{len(self.line)} trainings are waiting for their turn already; try again in a few "
                              "minutes")
            self.ended.pop(session, None)
            self.line.append(training)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            Path(f"{out}.txt").write_text(text, encoding="utf-8")
        except OSError:
            self.release(training)
            raise
        return training

    def admitted(self, training: Training, wait: float) -> bool:
        """Whether training holds a slot, waiting up to `wait` seconds for one."""
        with self.lock:
            if training in self.running:
                return True
            self.lock.wait_for(lambda: self.line and self.line[0] is training and len(self.running) < self.slots
                               or training.left(), wait)
            if training.left() or not (self.line and self.line[0] is training and len(self.running) < self.slots):
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
        # (The stop file stays: a GPU worker still running after a cancel reads it; it goes with the session.)
        for path in (training.config.checkpoint, training.config.corpus):
            Path(path).unlink(missing_ok=True)

    def running_for(self, session: str) -> list[Training]:
        with self.lock:
            return [t for t in self.line + self.running if t.session == session]

    def add(self, session: str, folder: Path, name: str, taken=()) -> str:
        """A trained folder joins session's models, loaded to write through (decoded per request, in this
        process); returns its name there, made unique (among taken too: the app's own models' names). The session's
        oldest goes beyond limits.TRAINED_PER_SESSION, the server's oldest beyond limits.TRAINED_IN_ALL."""
        model = CharRNN.from_pretrained(folder)
        source = str(folder)
        with self.lock:
            own = self.models.setdefault(session, {})
            name = unique_name(name, {*own, *taken})
            own[name] = Variant(source, model, read_metrics(source), read_bigram(source))
            self.made[source] = time.time()
            starts = {t.config.init_from for t in self.line + self.running}  # never deleted under a fine-tune
            while len(own) > limits.TRAINED_PER_SESSION:
                self.forget(session, next(n for n, v in own.items() if v.source not in starts))
            while len(self.made) > limits.TRAINED_IN_ALL:
                oldest = min((s for s in self.made if s not in starts), key=self.made.get)
                self.forget(*next((s, n) for s, models in self.models.items() for n, v in models.items()
                                  if v.source == oldest))
        return name

    def forget(self, session: str, name: str) -> None:
        """Delete one of session's models: its folder, its zip, its place in the lists (with self.lock held)."""
        variant = self.models[session].pop(name)
        self.made.pop(variant.source, None)
        ALONE.pop(variant.source, None)
        for folder in (variant.source, self.zips / Path(variant.source).name):
            shutil.rmtree(folder, ignore_errors=True)

    def zipped(self, session: str, name: str) -> Path:
        """The session's model as a zip of its Hub-ready folder (a folder named after it inside), made once;
        ValueError where the model is gone (deleted after its time)."""
        variant = self.models_of(session).get(name)
        if variant is None:
            raise ValueError(f"the model {name!r} is no longer here: trained models are kept "
                             f"{limits.KEEP_AFTER_SESSION // 60} minutes after their page closes")
        folder = Path(variant.source)
        inside = re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-.") or "charrnn-model"
        archive = self.zips / folder.name / f"{inside}.zip"
        if not archive.is_file():
            archive.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(archive.with_suffix(".tmp"), "w", zipfile.ZIP_DEFLATED) as z:
                for path in sorted(folder.iterdir()):
                    z.write(path, f"{inside}/{path.name}")
            os.replace(archive.with_suffix(".tmp"), archive)
        return archive

    def unpack(self, session: str, archive: Path, name: str, taken=()) -> str:
        """A zip of a trained folder (as zipped() makes) joins session's models; returns its name there (see add).
        Only the files a trained folder has are taken, within limits.TRAINED_ZIP_BYTES unpacked, a model of at most
        limits.TRAINED_PARAMETERS (counted before any is made), its weights read as safetensors: ModelFileError or
        a ValueError says what is wrong with it."""
        folder = self.new_folder(session)
        try:
            take_trained_files(Path(archive), folder)
            if is_next_line(str(folder)):
                raise ValueError("this zip holds a next-line model; only character models are written with and "
                                 "trained on here")
            check_size(folder)
            return self.add(session, folder, name, taken)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def models_of(self, session: str) -> dict[str, Variant]:
        """The session's models; asking is using: a session back after its page lost the server is kept again."""
        with self.lock:
            self.ended.pop(session, None)
            return dict(self.models.get(session, {}))

    def end(self, session: str) -> None:
        """The session's page closed (or lost the server): its trainings are cancelled, its models deleted
        limits.KEEP_AFTER_SESSION seconds later unless it comes back."""
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
        """Forget the sessions ended limits.KEEP_AFTER_SESSION ago, and every model older than limits.KEEP_LONGEST."""
        with self.lock:
            for session, ended in list(self.ended.items()):
                if now - ended >= limits.KEEP_AFTER_SESSION:
                    del self.ended[session]
                    for name in list(self.models.get(session, {})):
                        self.forget(session, name)
                    self.models.pop(session, None)
                    if folder := self.folders.pop(session, None):
                        shutil.rmtree(folder, ignore_errors=True)
            for session, own in self.models.items():
                for name, variant in list(own.items()):
                    if wall - self.made[variant.source] >= limits.KEEP_LONGEST:
                        self.forget(session, name)


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
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, zlib.error) as e:
        raise ValueError(f"this is not a zip that can be read ({e})") from None


def parameters_of(config: dict) -> int:
    """The parameters of the model a config describes, counted on torch's meta device: no weight is made."""
    with torch.device("meta"):
        return CharRNN(**{**config, "count_weight": 0.0, "lexicon_weight": 0.0}).num_parameters()


def check_size(folder: Path) -> None:
    """A model folder's config builds a model of at most limits.TRAINED_PARAMETERS: counted on torch's meta device,
    where no weight is made (a config can ask for any size, and is read before its weights)."""
    try:
        parameters = parameters_of(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    except Exception as e:  # whatever a config can be wrong with
        raise ValueError(f"its config.json does not describe a charrnn model ({type(e).__name__}: {e})") from None
    if parameters > limits.TRAINED_PARAMETERS:
        raise ValueError(f"its model has {parameters:,} parameters; the most this takes is "
                         f"{limits.TRAINED_PARAMETERS:,}")


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


def serve(events) -> None:
    """The training process: settings from the first line of input, events out (to events), a stop or the end of
    input in."""
    from training.train import TrainConfig

    os.nice(NICE)
    torch.set_num_threads(int(sys.argv[1]))
    config = TrainConfig(**json.loads(sys.stdin.readline()))
    stop = threading.Event()

    def listen() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                stop.set()
        os._exit(0)  # the end of input: the server cancelled this training, or is gone itself

    def report(event: dict) -> None:
        print(json.dumps(event, ensure_ascii=False), file=events, flush=True)

    threading.Thread(target=listen, name="orders", daemon=True).start()
    run_training(config, report, stop)
    os._exit(0)


if __name__ == "__main__":
    events_out = sys.stdout
    sys.stdout = sys.stderr  # whatever else prints (a library's notice) goes with the errors, not among the events
    from . import memory
    memory.bound_primitive_cache()
    serve(events_out)
