"""The engine's trainings (engine/training.py) for real: each in a process of its own, in line for a slot, stopped,
cancelled, crashed; every process checked by its pid when it should be gone."""
import json
import os
import signal
import time
import zipfile
from pathlib import Path

import pytest

from charrnn import CharRNN, limits
from conftest import cut, tiny_config
from engine import training as engine_training
from engine.training import Trained

TEXT = "jaychou_lyrics.txt"
pytestmark = pytest.mark.slow  # several processes, each training for seconds


def config(tmp_path, **overrides):
    settings = dict(eval_seconds=0.5, max_minutes=1.0, sample_prefixes=["我"], patience=1000, epochs=10_000)
    return tiny_config(tmp_path / "corpus.txt", tmp_path / "out", **{**settings, **overrides})


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def until(events, kind: str) -> list[dict]:
    seen = []
    for event in events:
        seen.append(event)
        if event["event"] == kind:
            return seen
    raise AssertionError(f"no {kind} event: {seen}")


@pytest.fixture
def trained(tmp_path):
    return Trained(tmp_path / "trained", slots=1)


def test_a_training_streams_points_stops_and_joins_its_session_only(trained, tmp_path):
    """Points with samples come while it trains, in a process of its own at a lower priority; Stop ends it with the
    best weights, which join that session's models (not another's), zipped with their card."""
    text = cut(TEXT, 20_000)
    job = trained.start("session-a", config(tmp_path), "mine", text)
    events = job.events()
    seen = until(events, "point")
    pid = job.process.pid
    assert os.getpriority(os.PRIO_PROCESS, pid) >= engine_training.NICE
    seen += until(events, "point") + until(events, "point")
    job.stop()
    seen += list(events)
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "start" and kinds.count("point") >= 3 and kinds[-2:] == ["saving", "done"], kinds
    assert seen[-1]["model"] == "mine" and not alive(pid)
    assert list(trained.models_of("session-a")) == ["mine"] and trained.models_of("session-b") == {}
    model = trained.models_of("session-a")["mine"].model
    assert len(model.generate("我", 20, seed=1)) == 20
    archive = trained.zipped("session-a", "mine")
    with zipfile.ZipFile(archive) as z:
        names = {n.split("/", 1)[1] for n in z.namelist()}
    assert {"model.safetensors", "config.json", "bigram.safetensors", "metrics.json", "README.md",
            "training_curve.png"} <= names
    assert not list((tmp_path / "trained").rglob("*.txt")), "the uploaded text is deleted once trained on"


def test_a_second_training_waits_in_line_and_may_leave_it(trained, tmp_path):
    text = cut(TEXT, 20_000)
    first = trained.start("a", config(tmp_path), "first", text)
    second = trained.start("b", config(tmp_path), "second", text)
    firsts, seconds = first.events(), second.events()
    until(firsts, "start")
    assert next(seconds) == {"event": "waiting", "place": 1}  # next in line, behind the one training
    assert second.process is None
    third = trained.start("c", config(tmp_path), "third", text)
    thirds = third.events()
    assert next(thirds) == {"event": "waiting", "place": 2}
    seconds.close()  # the second leaves the line (its page closed): the third moves up
    assert next(thirds)["place"] == 1
    first.stop()
    assert [e["event"] for e in firsts][-1] == "done"
    third.stop()  # asked while it waits: it never starts
    assert list(thirds)[-1] == {"event": "failed", "message": "The training left the line before it started."}
    assert third.process is None


def test_a_closed_session_cancels_its_training_and_its_models_go_later(trained, tmp_path, monkeypatch):
    text = cut(TEXT, 20_000)
    done = trained.start("gone", config(tmp_path, max_minutes=0.02), "kept", text)
    assert [e["event"] for e in done.events()][-1] == "done"
    job = trained.start("gone", config(tmp_path), "cut short", text)
    events = job.events()
    until(events, "point")
    pid = job.process.pid
    trained.end("gone")
    assert list(events) == [] and not alive(pid)
    assert list(trained.models["gone"]) == ["kept"]  # kept KEEP_AFTER_SESSION seconds, then deleted
    folder = trained.folder_of("gone")
    trained.sweep(time.monotonic() + limits.KEEP_AFTER_SESSION - 5, time.time())
    assert folder.is_dir()
    trained.sweep(time.monotonic() + limits.KEEP_AFTER_SESSION + 1, time.time())
    assert "gone" not in trained.models and not folder.exists()


def test_a_crashed_training_says_so_and_frees_its_slot(trained, tmp_path):
    text = cut(TEXT, 20_000)
    job = trained.start("a", config(tmp_path), "crash", text)
    events = job.events()
    until(events, "point")
    os.kill(job.process.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    last = list(events)[-1]
    assert last["event"] == "failed" and "killed (out of memory?)" in last["message"]
    assert trained.models_of("a") == {} and not job.folder.exists()
    bad = trained.start("a", config(tmp_path, init_from=str(tmp_path / "no such model")), "bad", text)
    last = list(bad.events())[-1]
    assert last["event"] == "failed" and "no such model" in last["message"] and "Traceback" not in last["message"]
    after = trained.start("a", config(tmp_path, max_minutes=0.02), "after", text)
    assert [e["event"] for e in after.events()][-1] == "done"  # the slot was freed


def test_a_zip_continues_and_a_bad_one_is_refused(trained, tmp_path, tiny_model_dir):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in tiny_model_dir.iterdir():
            z.write(path, f"whatever/{path.name}")
        z.writestr("../../evil.txt", "outside")
    name = trained.unpack("s", archive, "uploaded")
    assert name == "uploaded" and not (tmp_path / "evil.txt").exists()
    variant = trained.models_of("s")["uploaded"]
    assert variant.model.generate("我", 10, seed=2) == CharRNN.from_pretrained(tiny_model_dir).generate("我", 10, seed=2)
    huge = json.dumps({**json.loads((tiny_model_dir / "config.json").read_text()), "hidden_size": 100_000})
    for content, message in ((b"not a zip", "not a zip"), ({"notes.txt": "hello"}, "no trained model"),
                             ({"config.json": huge, "model.safetensors": "x"}, "parameters; the most"),
                             ({"config.json": "[1, 2]", "model.safetensors": "x"}, "does not describe")):
        bad = tmp_path / "bad.zip"
        if isinstance(content, dict):
            with zipfile.ZipFile(bad, "w") as z:
                for name, data in content.items():
                    z.writestr(name, data)
        else:
            bad.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            trained.unpack("s", bad, "bad")
    assert list(trained.models_of("s")) == ["uploaded"]


def test_the_zero_gpu_way_streams_and_stops_through_a_file(tmp_path):
    """On ZeroGPU the training runs in the GPU worker spaces.GPU lends, not in a process of the server's. Outside a
    ZeroGPU Space spaces.GPU is a no-op, so here the same code runs in this process (no GPU is lent here)."""
    trained = Trained(tmp_path / "trained", slots=1, zero_gpu=True)
    job = trained.start("s", config(tmp_path), "on the gpu", cut(TEXT, 20_000))
    events = job.events()
    until(events, "point")
    assert job.process is None
    job.stop()
    rest = list(events)
    assert [e["event"] for e in rest][-2:] == ["saving", "done"] and job.stop_file.exists()
    assert list(trained.models_of("s")) == ["on the gpu"]


def test_the_trained_folder_is_never_one_with_other_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not trained models"):
        Trained(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").is_file()
    Trained(tmp_path / "ours")
    Trained(tmp_path / "ours")  # its own folder, emptied again at the next start


def test_the_line_is_bounded(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "TRAININGS_WAITING", 2)
    text = cut(TEXT, 20_000)
    waiting = [trained.start(str(k), config(tmp_path), "x", text) for k in range(2)]
    with pytest.raises(engine_training.Refused, match="2 trainings are waiting"):
        trained.start("3", config(tmp_path), "x", text)
    with pytest.raises(engine_training.Refused, match="training already"):
        trained.start("1", config(tmp_path), "again", text)
    for job in waiting:
        job.cancel()
        assert list(job.events())[-1]["event"] == "failed"
    assert trained.line == [] and not list(trained.root.rglob("*.txt"))


def test_a_session_keeps_its_last_models_but_never_the_start_of_a_fine_tune(trained, tmp_path, tiny_model_dir):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in tiny_model_dir.iterdir():
            z.write(path, f"m/{path.name}")
    names = [trained.unpack("s", archive, "model") for _ in range(limits.TRAINED_PER_SESSION)]
    first = trained.models_of("s")[names[0]]
    job = trained.start("s", config(tmp_path, init_from=first.source), "tuned", cut(TEXT, 20_000))
    trained.unpack("s", archive, "model")  # one more than a session keeps: the oldest not in use goes
    assert list(trained.models_of("s")) == [names[0], *names[2:], "model (4)"]
    assert Path(first.source).is_dir()
    job.cancel()
    assert list(job.events())[-1]["event"] == "failed"
