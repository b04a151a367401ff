"""The decoding loops in a process of their own (engine.workers): a real child process on a small trained model."""
import os
import time

import pytest
import torch

from charrnn import CharRNN
from charrnn.form import Options
from engine import workers
from engine.workers import Decoder, DecoderGone, sendable
from engine.loop import Busy
from conftest import cpu_used, loop_stream as stream_of, pieces_text as text, wait_until

MIXED = [dict(temperature=0.8, seed=1), dict(temperature=1.0, seed=2, top_k=20), dict(temperature=0, seed=3),
         dict(temperature=0.7, seed=5, lines=3, rhyme="auto"), dict(temperature=0.9, seed=6, acrostic="我你")]


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> CharRNN:
    return CharRNN.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def decoder():
    decoder = Decoder()
    yield decoder
    decoder.close()


@pytest.fixture(scope="module")
def loop(decoder, model, tiny_model_dir):
    return decoder.loop(str(tiny_model_dir), model)


def writing(model, folder) -> tuple:
    """A decoder of its own, and a loop of it writing an endless stream (under way)."""
    decoder = Decoder()
    loop = decoder.loop(str(folder), model)
    stream = stream_of(loop, "分开", 10**6, seed=1)
    next(stream)
    return decoder, loop, stream


def test_requests_decoded_in_the_process_write_what_each_writes_alone(model, loop):
    """Mixed options joining one batch in the other process: each seeded text is the one the model writes alone,
    and with details each piece is the same Step."""
    alone = [model.generate("分开", 80, **options) for options in MIXED]
    streams = [stream_of(loop, "分开", 80, **options) for options in MIXED]
    assert [text(stream) for stream in streams] == alone
    steps = [step for batch in stream_of(loop, "分开", 40, details=True, seed=7) for step in batch]
    assert steps == list(model.stream("分开", 40, seed=7, details=True))
    assert loop.open == 0, "finished requests are still open"
    wait_until(lambda: cpu_used(loop.decoder.process.pid, 0.5) <= 1, 10, "the process kept writing after the end")


def test_candidates_in_the_process_are_the_libraries(model, loop):
    assert loop.candidates("分开", 4, 30, seed=3, temperature=0.9) == model.candidates("分开", 4, 30, seed=3,
                                                                                       temperature=0.9)


def test_a_reader_that_stops_frees_its_row_in_the_process(loop):
    stream = stream_of(loop, "分开", 10**6, seed=1)
    next(stream)
    pid = loop.decoder.process.pid
    wait_until(lambda: cpu_used(pid, 0.3) >= 10, 10, "the process is not writing")
    stream.close()
    assert loop.open == 0
    wait_until(lambda: cpu_used(pid, 0.5) <= 1, 5, "the process kept writing for a reader who left")


def test_bad_options_are_refused_in_the_callers_thread(loop):
    for bad, match in ((dict(temperature=-1), "temperature"), (dict(acrostic="我\n"), "acrostic"),
                       (dict(lines=-2), "lines")):
        with pytest.raises(ValueError, match=match):
            stream_of(loop, "分开", 20, **bad)
    assert loop.open == 0


def test_a_full_loop_refuses_at_once(decoder, model, tiny_model_dir):
    small = decoder.loop(str(tiny_model_dir), model, rows=1, waiting=1)
    writing = small.submit(["分开"], 10**6, [Options(seed=1)])
    waiting = small.submit(["分开"], 10, [Options(seed=2)])
    with pytest.raises(Busy, match="busy.*Try again"):
        small.submit(["分开"], 10, [Options(seed=3)])
    writing[0].cancel()
    assert text(waiting[0]) == "".join(small.model.generate("分开", 10, seed=2))
    assert text(stream_of(small, "分开", 5, seed=4)) == small.model.generate("分开", 5, seed=4)


def test_an_idle_process_uses_no_cpu(decoder, loop):
    assert text(stream_of(loop, "分开", 20, seed=1))
    time.sleep(0.2)
    assert cpu_used(decoder.process.pid, 1.0) <= 1  # one clock tick is 10 ms


def test_a_source_the_process_cannot_load_is_said_to_each_request(decoder, model, tmp_path):
    missing = decoder.loop(str(tmp_path / "gone"), model)
    with pytest.raises(ValueError, match="gone"):
        text(stream_of(missing, "分开", 10, seed=1))


def test_a_process_that_dies_is_replaced_and_its_readers_are_told(model, tiny_model_dir, monkeypatch):
    """Killed under a stream: the stream ends with a clear error, a new process loads the models again and writes;
    one that keeps dying is not started again, and every request is then refused at once."""
    monkeypatch.setattr(workers, "RESTARTS", 1)
    decoder, loop, stream = writing(model, tiny_model_dir)
    first = decoder.process
    first.kill()
    with pytest.raises(DecoderGone, match="try again"):
        text(stream)
    wait_until(lambda: decoder.process is not first, 10, "no new process")
    assert text(stream_of(loop, "分开", 30, seed=2)) == model.generate("分开", 30, seed=2)
    assert loop.open == 0
    decoder.process.kill()
    wait_until(lambda: decoder.gone is not None, 10, "a process that keeps dying was started again")
    with pytest.raises(DecoderGone, match="restart the app"):
        stream_of(loop, "分开", 10)


def test_a_closed_decoder_stops_its_process_and_refuses_clearly(model, tiny_model_dir):
    decoder, loop, stream = writing(model, tiny_model_dir)
    process = decoder.process
    decoder.close()
    assert process.returncode == 0
    with pytest.raises(DecoderGone, match="stopped"):
        text(stream)
    with pytest.raises(DecoderGone, match="stopped"):
        stream_of(loop, "分开", 10)
    assert decoder.process is process, "a closed decoder started another process"


def test_an_error_pickle_cannot_carry_travels_as_its_words():
    """What the process sends its readers must pickle, or its sending thread would die with it."""
    class Unpicklable(Exception):  # a local class: pickle cannot find it by name
        pass

    carried = sendable(Unpicklable("lost"))
    assert isinstance(carried, RuntimeError) and "lost" in str(carried)
    busy, bad = Busy("full"), ValueError("temperature")
    assert sendable(busy) is busy and sendable(bad) is bad


def test_the_models_are_dealt_out_to_the_processes_in_turn(model, english_model_dir, tiny_model_dir):
    """Two processes, three loops: the first and third share one, the second has the other; each writes what its
    model writes alone."""
    english = CharRNN.from_pretrained(english_model_dir)
    decoders = workers.Decoders(2)
    try:
        loops = [decoders.loop(str(folder), m) for folder, m in
                 ((tiny_model_dir, model), (english_model_dir, english), (tiny_model_dir, model))]
        assert loops[0].decoder is loops[2].decoder is not loops[1].decoder
        assert loops[0].decoder.process.pid != loops[1].decoder.process.pid
        for loop, prefix in zip(loops, ("分开", "The ", "我想")):
            assert text(stream_of(loop, prefix, 40, seed=4)) == loop.model.generate(prefix, 40, seed=4)
    finally:
        for decoder in decoders.started:
            decoder.close()


def test_one_process_per_core_on_a_cpu_and_one_on_a_gpu():
    assert workers.processes_for(torch.device("cpu")) == len(os.sched_getaffinity(0))
    assert workers.processes_for(torch.device("cuda")) == 1
