"""The engine's one way of writing (engine.catalog): the same text through a model's loop or alone, side by side
with the busy check, on small trained models."""
import pytest

from charrnn import CharRNN, Options
from conftest import wait_until
from engine.catalog import Variant, side_by_side
from engine.loop import Busy, Loop

OPTIONS = dict(temperature=0.8, seed=5, lines=2, no_repeat_ngram=4)


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> CharRNN:
    return CharRNN.from_pretrained(tiny_model_dir)


def written(writing) -> str:
    return "".join(piece for pieces in writing for piece in pieces)


def test_a_loop_and_a_request_alone_write_the_same_and_say_its_log_probability(model, tiny_model_dir):
    expected = model.candidates("分开", 1, 80, **OPTIONS)[0]
    for variant in (Variant(str(tiny_model_dir), model, {}, loop=Loop(model)), Variant("alone", model, {})):
        writing = variant.stream("分开", 80, OPTIONS, scored=True)
        assert written(writing) == expected.text
        assert writing.candidate().logprob == pytest.approx(expected.logprob, rel=1e-5)


def test_side_by_side_streams_every_model_and_words_a_full_loop(model, english_model_dir):
    english = CharRNN.from_pretrained(english_model_dir)
    full = Loop(model, rows=1, waiting=0)
    [held] = full.submit(["分开"], 100_000, [Options(seed=1)])
    variants = {"loop": Variant("a", model, {}, loop=Loop(model)), "alone": Variant("b", english, {}),
                "full": Variant("c", model, {}, loop=full)}
    updates = list(side_by_side(variants, "分开", 60, OPTIONS, 0.01))
    held.cancel()
    last = updates[-1]
    assert last["loop"][0] == model.generate("分开", 60, **OPTIONS) and last["loop"][1] is not None
    assert last["alone"][0] == english.generate("分开", 60, **OPTIONS) and last["alone"][2] is None
    assert isinstance(last["full"][2], Busy) and last["full"][0] == ""
    assert all(len(b["loop"][0]) >= len(a["loop"][0]) for a, b in zip(updates, updates[1:]))


def test_leaving_side_by_side_cancels_every_writing(model):
    loop = Loop(model)
    updates = side_by_side({"a": Variant("a", model, {}, loop=loop), "b": Variant("b", model, {})}, "分开",
                           1000, dict(temperature=1.0, no_repeat_ngram=0), 0.01)
    next(updates)
    updates.close()
    wait_until(lambda: loop.held() == 0, 10, "the loop still holds the request")
