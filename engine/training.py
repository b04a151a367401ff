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
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
import zipfile
from pathlib import Path, PurePosixPath

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
# What a trained folder holds (hub_card writes the card and its curve): the only files taken from an uploaded zip.
TRAINED_FILES = {"config.json", "model.safetensors", BIGRAM_NAME, LEXICON_NAME, METRICS_NAME, "README.md",
                 "training_curve.png"}


def default_slots() -> int:
    """Trainings at once: one for every two cores, so that writing keeps cores of its own."""
    return max(1, cores() // 2)


def training_threads() -> int:
    return max(1, cores() // 2)


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
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.training", str(training_threads())], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", preexec_fn=lower_priority)
        errors = []
        threading.Thread(target=lambda: errors.extend(self.process.stderr), name="training errors",
                         daemon=True).start()
        self.send(json.dumps(dataclasses.asdict(self.config)))
        if self.stopping.is_set():
            self.send("stop")
        failed = None
        for line in self.process.stdout:
            event = json.loads(line)
            if event["event"] == "failed":
                failed = event
                continue
            yield event
        code = self.process.wait()
        if self.cancelled.is_set():
            return
        if failed or code:
            yield failed or {"event": "failed", "message": crash_message(code, errors)}
            return
        self.finished = True
        yield {"event": "done", "model": self.trained.add(self.session, self.folder, self.name),
               "folder": str(self.folder)}

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):  # an ended process reads nothing more
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def stop(self) -> None:
        """End it at its next step; it keeps the best weights measured and is saved."""
        self.stopping.set()
        if self.process is not None:
            self.send("stop")

    def cancel(self) -> None:
        """End it now, saving nothing: its process is killed (or it leaves the line)."""
        if self.finished:
            return
        self.cancelled.set()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def lower_priority() -> None:
    os.nice(NICE)


def crash_message(code: int, errors: list[str]) -> str:
    if code < 0:
        why = "it was killed (out of memory?)" if code == -9 else f"it ended on signal {-code}"
    else:
        why = errors[-1].strip() if errors else f"it ended with status {code}"
    return f"The training failed: {why}. Its slot is free again; try a smaller size or a shorter text."


class Trained:
    """The trainings of every session, the line they wait in, and each session's trained models."""

    def __init__(self, root: Path, slots: int | None = None, device: str = "cpu"):
        self.root, self.slots, self.device = Path(root), slots or default_slots(), device
        shutil.rmtree(self.root, ignore_errors=True)  # no session outlives the server that made it
        self.root.mkdir(parents=True)
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
        checkpoint go in the session's folder. It waits in line until events() is iterated and a slot is free."""
        out = self.folder_of(session) / f"{next(self.numbers)}"
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{out}.txt").write_text(text, encoding="utf-8")
        config = dataclasses.replace(config, corpus=f"{out}.txt", out=str(out), checkpoint=f"{out}.pt",
                                     progress=False, device=self.device)
        training = Training(self, session, config, name)
        with self.lock:
            self.ended.pop(session, None)
            self.line.append(training)
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
        for path in (training.config.checkpoint, training.config.corpus):
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


def serve() -> None:
    """The training process: settings from the first line of input, events out, a stop or the end of input in."""
    import torch
    from hub_card.write import write_card
    from training.train import TrainConfig, train

    torch.set_num_threads(int(sys.argv[1]))
    config = TrainConfig(**json.loads(sys.stdin.readline()))
    stop = threading.Event()

    def listen() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                stop.set()
        os._exit(0)  # the end of input: the server cancelled this training, or is gone itself

    def report(event: dict) -> None:
        print(json.dumps(event, ensure_ascii=False), flush=True)

    threading.Thread(target=listen, name="orders", daemon=True).start()
    try:
        train(config, report, stop)
        write_card(config.out)  # the card and its curve, for the zip and the Hub
    except ValueError as e:  # a text or a starting model the training cannot use: the message says why
        report({"event": "failed", "message": f"{str(e)[:1].upper()}{str(e)[1:]}."})
    os._exit(0)


if __name__ == "__main__":
    from . import memory
    memory.bound_primitive_cache()
    serve()
