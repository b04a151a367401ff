"""The engine's one way of writing (engine.catalog): the same text through a model's loop or alone, side by side
with the busy check, on small trained models; and how the page words what the library refuses."""
import pickle

import pytest
import torch

from charrnn import CharRNN, Options, Vocab, errors
from conftest import wait_until
from engine.catalog import Variant, side_by_side
from engine.loop import Busy, Loop
from ui.common import worded

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


def test_the_page_words_every_refusal_of_the_library():
    """Each typed error the library raises, as the page says it: the control's label and what to do instead. Each
    pickles as its own type, as it crosses from a decoding process."""
    torch.manual_seed(0)
    lyrics = CharRNN(Vocab(list("我你的爱 \n")).to_dict(), embed_size=4, hidden_size=8).eval()
    one_line = CharRNN(Vocab(list("我你的爱 ")).to_dict(), embed_size=4, hidden_size=8).eval()
    cases = [(lambda: lyrics.generate("我", 10, temperature=5),
              "Temperature must be a number from 0 to 2 (0 is greedy), got 5."),
             (lambda: lyrics.score(""), "Text is empty: give some text."),
             (lambda: lyrics.generate("我", 10, acrostic="我龘"),
              "Acrostic has characters this model does not know (“龘”): choose others, or another model."),
             (lambda: lyrics.generate("我", 10, acrostic="我\n你"),
              "Acrostic must be one line of characters (no line break), got '我\\n你'."),
             (lambda: lyrics.generate("我", 10, rhyme="江阳"),
              "This model knows no word or character that rhymes with '江阳': choose another rhyme, or auto."),
             (lambda: one_line.generate("我", 10, lines=2),
              "This model writes no line breaks, so it cannot keep Lines: set Lines off, or choose a lyrics model."),
             (lambda: one_line.generate("我", 10, acrostic="我你"),
              "This model writes no line breaks, so it cannot keep Acrostic: clear Acrostic, or choose a lyrics"),
             (lambda: lyrics.generate("我", 3, lines=4), "Length: 3 is too short for the form asked: make it at least"),
             (lambda: lyrics.generate("我", 50, lines=1, acrostic="我你"),
              "Lines: 1 is too few for the acrostic (a line for each character): make it at least 2."),
             (lambda: lyrics.candidates("我", 0, 5), "n must be a whole number from 1 to 16, got 0.")]
    for call, sentence in cases:
        with pytest.raises(errors.OptionError) as error:
            call()
        assert sentence in worded(error.value), worded(error.value)
        again = pickle.loads(pickle.dumps(error.value))
        assert type(again) is type(error.value) and worded(again) == worded(error.value)
