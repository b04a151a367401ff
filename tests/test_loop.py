"""The decoding loop (engine.loop): requests joining and leaving a running batch, on a small trained model."""
import os
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import CharRNN
from charrnn.form import Options
from engine.loop import END, Busy, Loop, Request
from conftest import count_steps, loop_stream as stream_of, pieces_text as text, wait_until

MIXED = [dict(temperature=0.8, seed=1), dict(temperature=1.0, seed=2, top_k=20), dict(temperature=0, seed=3),
         dict(temperature=1.2, seed=4, top_p=0.9, repetition_penalty=1.3),
         dict(temperature=0.7, seed=5, lines=3, rhyme="auto"), dict(temperature=0.9, seed=6, acrostic="我你",
                                                                    no_repeat_ngram=3)]


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> CharRNN:
    return CharRNN.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def loop(model) -> Loop:
    return Loop(model)


def cpu_ticks(thread: threading.Thread) -> int:
    """The CPU time a thread has used, in clock ticks (Linux)."""
    fields = open(f"/proc/self/task/{thread.native_id}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_requests_joining_mid_stream_write_what_each_writes_alone(model, loop):
    """Mixed options in one batch, each request joining while the others are part-way: a seeded request writes the
    same text as alone."""
    alone = [model.generate("分开", 80, **options) for options in MIXED]
    streams, texts = [], [None] * len(MIXED)
    for k, options in enumerate(MIXED):
        streams.append(stream_of(loop, "分开", 80, **options))
        texts[k] = [next(streams[k], [])]  # this one has started: the next joins a batch under way
    for k, stream in enumerate(streams):
        texts[k] = text(texts[k]) + text(stream)
    assert texts == alone
    wait_until(lambda: not loop.active, message="finished requests keep their rows")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["", "分开", "我", "天青色等烟雨\n"]), st.integers(5, 60),
                          st.sampled_from([0, 0.5, 1.0, 1.5]), st.integers(0, 2**32 - 1), st.sampled_from([0, 3]),
                          st.sampled_from([None, 2]), st.integers(0, 30)), min_size=1, max_size=5))
def test_any_mix_of_requests_joining_at_any_step_writes_as_alone(model, loop, requests):
    expected = [model.generate(prefix, length, temperature, seed=seed, no_repeat_ngram=ngram, lines=lines)
                for prefix, length, temperature, seed, ngram, lines, _ in requests]
    results, threads = [None] * len(requests), []

    def serve(k, prefix, length, temperature, seed, ngram, lines, delay):
        wait_until(lambda: steps() >= delay or not loop.active)
        results[k] = text(stream_of(loop, prefix, length, temperature=temperature, seed=seed, no_repeat_ngram=ngram,
                                      lines=lines))

    steps = count_steps(loop)
    for k, request in enumerate(requests):
        threads.append(threading.Thread(target=serve, args=(k, *request)))
        threads[-1].start()
    for thread in threads:
        thread.join(60)
    assert results == expected


def test_details_and_plain_requests_share_a_batch(model, loop):
    steps_stream = stream_of(loop, "分开", 60, details=True, temperature=0.8, seed=9)
    plain = text(stream_of(loop, "分开", 60, temperature=0.8, seed=9))
    steps = [step for batch in steps_stream for step in batch]
    assert "".join(step.char for step in steps) == plain == model.generate("分开", 60, 0.8, seed=9)
    assert all(0 < step.prob <= 1 for step in steps)


def test_candidates_through_the_loop_are_the_libraries(model, loop):
    assert loop.candidates("分开", 4, 40, seed=3, temperature=0.8) == model.candidates("分开", 4, 40, 0.8, seed=3)


def test_a_reader_that_stops_frees_its_row_and_the_loop_stops_working_for_it(loop):
    stream = stream_of(loop, "分开", 1000, temperature=1.0)
    next(stream)
    assert len(loop.active) == 1
    stream.close()  # what a Stop or a closed connection does to the generator reading it
    wait_until(lambda: not loop.active, 5, "a cancelled request keeps its row")
    steps = count_steps(loop)
    time.sleep(0.2)
    assert steps() == 0, "the loop kept decoding with no request"


def test_a_full_loop_refuses_at_once_and_serves_again_after(model):
    loop = Loop(model, rows=1, waiting=1)
    first = stream_of(loop, "分开", 1000)
    next(first)  # it holds the only row
    second = stream_of(loop, "分开", 20, seed=1)  # it waits for the row
    with pytest.raises(Busy, match="busy.*Try again"):
        stream_of(loop, "分开", 20)
    first.close()
    assert text(second) == model.generate("分开", 20, seed=1)
    assert text(stream_of(loop, "分开", 5)) and not loop.waiting


def test_bad_options_are_refused_in_the_callers_thread(loop):
    with pytest.raises(ValueError, match="temperature"):
        stream_of(loop, "分开", 10, temperature=-1)
    with pytest.raises(ValueError, match="acrostic"):
        stream_of(loop, "分开", 10, acrostic="😀")
    assert not loop.waiting and len(text(stream_of(loop, "分开", 10))) == 10


def test_an_idle_loop_uses_no_cpu(loop):
    text(stream_of(loop, "分开", 50))
    wait_until(lambda: not loop.active)
    before = cpu_ticks(loop.thread)
    time.sleep(1.0)
    assert cpu_ticks(loop.thread) - before <= 1, f"an idle loop used CPU ({os.sysconf('SC_CLK_TCK')} ticks a second)"


def test_a_failure_inside_the_loop_reaches_its_readers_and_the_loop_goes_on(model, monkeypatch):
    """Mocked: the batch's step is made to fail once (no real input breaks the loop; that is the point)."""
    loop = Loop(model)
    stream = stream_of(loop, "分开", 100)
    next(stream)
    monkeypatch.setattr(loop.batch, "step", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        text(stream)
    assert text(stream_of(loop, "分开", 30, seed=2)) == model.generate("分开", 30, seed=2)


def test_a_gathering_reader_wakes_once_an_interval_and_ends_when_its_request_does(model, loop):
    """With `every`, pieces gather between reads: far fewer reads than steps, the same text, and no wait for the
    interval to run out once the request has ended."""
    start = time.perf_counter()
    lists = list(stream_of(loop, "分开", 300, every=lambda: 0.05, temperature=1.0, seed=4))
    took = time.perf_counter() - start
    assert text(lists) == model.generate("分开", 300, seed=4)
    assert len(lists) <= took / 0.05 + 2 < 300
    start = time.perf_counter()
    assert text(stream_of(loop, "分开", 3, every=lambda: 30.0, seed=4)) == model.generate("分开", 3, seed=4)
    assert time.perf_counter() - start < 5, "the reader waited out its interval after the end"


def test_every_models_loop_is_stepped_by_one_thread(model):
    """Loops of several models share the worker's thread: they decode side by side, each as it would alone."""
    first, second = Loop(model), Loop(model)
    assert first.thread is second.thread
    streams = [stream_of(first, "分开", 80, seed=5), stream_of(second, "我", 80, seed=6)]
    assert [text(s) for s in streams] == [model.generate("分开", 80, seed=5), model.generate("我", 80, seed=6)]


def test_a_request_ends_at_its_first_end_though_an_error_follows(model):
    """A step that fails after a request's last piece gives it the error too: the reader has its text by then."""
    request = Request("分开", None)
    for item in (["我"], ["你"], END, RuntimeError("after the end")):
        request.put(item)
    assert text(request) == "我你"


def test_a_cancelled_waiting_request_leaves_its_place_at_once(model):
    loop = Loop(model, rows=1, waiting=1)
    writing = stream_of(loop, "分开", 10**6, seed=1)
    next(writing)  # it holds the only row
    [waiting] = loop.submit(["分开"], 20, [Options(seed=2)])
    waiting.cancel()  # still in the queue until a row frees, but no longer counted
    assert loop.held() == 1
    [admitted] = loop.submit(["分开"], 5, [Options(seed=3)])  # not Busy
    writing.close()
    assert text(admitted) == model.generate("分开", 5, seed=3)
