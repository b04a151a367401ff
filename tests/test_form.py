"""Form in decoding: lines, acrostic, rhyme, no repeats, the repetition penalty, details and candidates,
checked on tiny real models against what the options promise (and, where they say so, a full forward pass)."""
import math
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import CharRNN, Vocab, errors
from charrnn.decoding import Batch
from charrnn.form import Options
from charrnn.rhyme import GROUPS, English, english_key, is_han
from conftest import forward_probs

ROOT = Path(__file__).resolve().parent.parent
SEEDS = range(8)
PREFIXES = ["分开", "窗外的麻雀\n", ""]
LONG = 400  # a length no form here comes near: the budget never bends a line
SPACES = "\n \u3000"

NO_TOKEN = "a rhyming line with no token of its own"
HEAD_ALONE = "an acrostic line whose head is its only token"
REDRAWN_REPEAT = "a redrawn line end repeats an n-gram"


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return CharRNN.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def heads(model):
    """Four acrostic characters the tiny model knows (its 6,000 characters of lyrics lack 春, 夏 and 冬)."""
    known = "".join(c for c in "春夏秋冬风花雪月我你的不爱一天人心" if c in model.vocab)
    assert len(known) >= 4
    return known[:4]


@pytest.fixture(scope="module")
def english(english_model_dir):
    return CharRNN.from_pretrained(english_model_dir)


def mid_line(prefix: str) -> bool:
    return bool(prefix) and not prefix.endswith("\n")


def fewest(prefix: str, lines=None, acrostic=None) -> int:
    """The shortest length that holds the form: a character and a break per line, one more on an acrostic's."""
    heads = len(acrostic or "")
    total = max(lines or 0, heads)
    if mid_line(prefix) and not heads:
        return 2 * total - 1  # the prefix's line needs only its break
    return mid_line(prefix) + 3 * heads + 2 * total - 2 * heads  # an acrostic first breaks the prefix's line


def broken_rules(model, prefix, text, length, lines=None, acrostic=None, rhyme=None, no_repeat_ngram=0,
                 **_) -> list[tuple[str, str]]:
    """(rule, what) for each promise of the options that text, the continuation of prefix, breaks."""
    broken = []
    if len(text) > length:
        broken.append(("length", f"{len(text)} > {length}"))
    if "<unk>" in text:
        broken.append(("unk", "<unk> written"))
    mid = mid_line(prefix)
    breaks = max(lines or 0, len(acrostic)) + mid if acrostic else lines
    if breaks is not None and (text.count("\n") != breaks or not text.endswith("\n")):
        broken.append(("lines", f"{text.count(chr(10))} line breaks, wanted {breaks}, in {text!r}"))
    own = text.split("\n")[:-1]  # each line the continuation ended, as far as the continuation wrote it
    ends = [sum(len(line) + 1 for line in own[:i + 1]) for i in range(len(own))]
    first = 1 if mid else 0  # the first line the continuation wrote from its start
    if (lines or acrostic or rhyme) and any(not line for line in own[first:]):
        broken.append(("empty line", repr(text)))
    head_at = {}  # line number -> where its acrostic head is in text
    if acrostic:
        if mid and not text.startswith("\n"):
            broken.append(("acrostic", f"no line break first: {text!r}"))
        for k, head in enumerate(acrostic, first):
            if k < len(own):
                head_at[k] = ends[k - 1] if k else 0
                if not own[k].startswith(head) or len(own[k]) < 2:
                    broken.append(("acrostic", f"line {own[k]!r} for {head!r}"))
    if rhyme:
        scheme = model.rhymes.scheme
        full = [prefix.split("\n")[-1] + own[0], *own[1:]] if own else []
        if rhyme == "auto":
            key = next((k for k in map(scheme.key, reversed(prefix.split("\n")[:-1])) if k), None)
        else:
            key = scheme.parse(rhyme)
        for i, (line, end) in enumerate(zip(full, ends)):
            if acrostic and mid and i == 0:
                continue  # the break an acrostic opens with ends the prefix's line
            bug = None
            if scheme.key(own[i]) is None:
                bug = NO_TOKEN
            elif i in head_at and sum(map(is_han, own[i])) == 1 and is_han(own[i][0]):
                bug = HEAD_ALONE
            if key is None:  # "auto": the first line written sets the rhyme
                key = None if bug else scheme.key(line)
                continue
            if breaks is not None:
                rest = sum(3 if j in range(first, first + len(acrostic or "")) else 2 for j in range(i + 1, breaks))
                if length - end <= rest:
                    continue  # only the fewest characters fitted after this line: its break was forced
            if scheme.key(line) != key:
                broken.append((bug or "rhyme", f"{line!r} is {scheme.key(line)}, not {key}, in {text!r}"))
    if no_repeat_ngram:
        n, seen, forced = no_repeat_ngram, set(), set(head_at.values())
        for j in range(n - 1, len(text)):
            gram = text[j - n + 1:j + 1]
            if gram in seen and text[j] != "\n" and j not in forced:
                if not (rhyme and text[j + 1:j + 2] == "\n" and every_ending_repeats(model, gram, seen)):
                    broken.append((REDRAWN_REPEAT if rhyme else "no repeat", f"{gram!r} again at {j} in {text!r}"))
            seen.add(gram)
    return broken


def every_ending_repeats(model, gram: str, seen: set) -> bool:
    """The form outranks loop avoidance: a rhyming line end may repeat an n-gram only when every character of
    its rhyme would have."""
    scheme = model.rhymes.scheme
    endings = scheme.endings(scheme.key(gram[-1]), set(model.vocab.chars))
    return all(gram[:-1] + c in seen for c in endings)


def assert_form(model, prefix, text, length, **options):
    assert broken_rules(model, prefix, text, length, **options) == []


def forward_logits(model, prefix: str, text: str = "") -> torch.Tensor:
    """The scores decoding reads [len(text) + 1, V], predicting each character of text and the one after, from one
    full forward pass (an empty prefix is read as a line break, as decoding primes it): the network's logits, or
    for a model that mixes in count models, the log of the mixture (conftest.forward_probs)."""
    ids = model.vocab.encode((prefix or "\n") + text)
    if model.count_share:
        scores = forward_probs(model, ids).log()
    else:
        with torch.no_grad():
            scores = model(torch.tensor([ids]))[0][0]
    return scores[len(prefix or "\n") - 1:]


def decoding_distribution(model, logits: torch.Tensor, temperature: float = 1.0, top_k=None) -> torch.Tensor:
    """What decoding samples from (see test_decoding.next_char_probs), normalised, then cut to the top k."""
    probs = (logits.softmax(-1) - (1 - model.count_share) * model.smoothing * model.prior).clamp(min=0)
    probs[..., model.vocab.unk_id] = 0
    probs = probs ** (1 / temperature)
    if top_k:
        probs = probs * (probs >= probs.topk(top_k, -1).values[..., -1:])
    return probs / probs.sum(-1, keepdim=True)


def logprob(model, prefix: str, text: str) -> float:
    logits = forward_logits(model, prefix, text)[:-1]
    ids = torch.tensor(model.vocab.encode(text))
    return logits.log_softmax(-1).gather(1, ids[:, None]).sum().item()


# Lines -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("lines", [1, 3])
def test_lines_are_exact(model, prefix, lines):
    for seed in SEEDS:
        text = model.generate(prefix, LONG, seed=seed, lines=lines)
        assert text.count("\n") == lines and text.endswith("\n") and len(text) < LONG
        assert_form(model, prefix, text, LONG, lines=lines)


@pytest.mark.parametrize("prefix, options, shortest", [
    ("分开", {"lines": 3}, 5),  # finishing the prefix's line takes only its break
    ("窗外的麻雀\n", {"lines": 3}, 6),
    ("", {"lines": 3}, 6),
    ("分开", {"acrostic": 2}, 7),  # "\n" + 2 * (head, character, break)
    ("", {"acrostic": 2, "lines": 3}, 8),
])
def test_a_tight_length_still_keeps_the_form_and_a_shorter_one_is_refused(model, heads, prefix, options, shortest):
    if "acrostic" in options:
        options = {**options, "acrostic": heads[:options["acrostic"]]}
    assert fewest(prefix, **options) == shortest
    for length in (shortest, shortest + 1, shortest + 4):
        for seed in SEEDS:
            text = model.generate(prefix, length, seed=seed, **options)
            assert_form(model, prefix, text, length, **options)
            assert len(text) == length or length > shortest
    with pytest.raises(errors.TooShort, match="too short") as error:
        model.generate(prefix, shortest - 1, **options)
    assert (error.value.option, error.value.value, error.value.needed) == ("length", shortest - 1, shortest)


def test_lines_stop_well_before_the_length(model):
    texts = [model.generate("分开", 1000, seed=seed, lines=2) for seed in SEEDS]
    assert all(text.count("\n") == 2 for text in texts)
    assert max(map(len, texts)) < 1000 and len(set(texts)) == len(texts)


# Acrostic -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", PREFIXES)
def test_acrostic_lines_begin_with_its_characters(model, heads, prefix):
    for seed in SEEDS:
        text = model.generate(prefix, LONG, seed=seed, acrostic=heads)
        assert text.startswith("\n") == mid_line(prefix)
        lines = text.split("\n")[mid_line(prefix):-1]
        assert [line[0] for line in lines] == list(heads) and text.endswith("\n")
        assert all(len(line) >= 2 for line in lines)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_more_lines_than_the_acrostic_has_characters_are_free_lines(model, heads, prefix):
    starts = set()
    for seed in SEEDS:
        text = model.generate(prefix, LONG, seed=seed, acrostic=heads[:2], lines=5)
        assert_form(model, prefix, text, LONG, acrostic=heads[:2], lines=5)
        lines = text.split("\n")[mid_line(prefix):-1]
        assert len(lines) == 5 and [line[0] for line in lines[:2]] == list(heads[:2])
        starts.update(line[0] for line in lines[2:])
    assert len(starts) > 2  # the extra lines begin however the model likes


def test_an_unknown_acrostic_character_is_named(model, heads):
    with pytest.raises(errors.UnknownCharacters, match="does not know") as error:
        model.generate("分开", 100, acrostic=heads[0] + "龘" + heads[1] + "😀")
    message = str(error.value)
    assert "'龘'" in message and "'😀'" in message and repr(heads[0]) not in message
    assert (error.value.option, error.value.characters) == ("acrostic", "龘😀")
    with pytest.raises(errors.BadValue, match="no line break") as error:
        model.generate("分开", 100, acrostic="龘\n")  # the line break first: the other fault is not hidden behind it
    assert error.value.option == "acrostic"


def test_fewer_lines_than_the_acrostic_has_characters_are_refused(model, heads):
    with pytest.raises(errors.TooShort, match="lines 3 is too short for the acrostic") as error:
        model.generate("分开", 100, acrostic=heads, lines=3)
    assert (error.value.option, error.value.needed) == ("lines", len(heads))


# Rhyme -----------------------------------------------------------------------------------------------------

def rhymes_of(model, prefix, text) -> list[str | None]:
    """The rhyme key of each line the continuation ended (the first one with the prefix's part of it)."""
    lines = (prefix.split("\n")[-1] + text).split("\n")[:-1]
    return [model.rhymes.scheme.key(line) for line in lines]


@pytest.mark.parametrize("rhyme, group", [("江阳", "江阳"), ("梭波", "梭波"), ("光", "江阳"), ("雨", "一七")])
@pytest.mark.parametrize("prefix", ["窗外的麻雀\n", ""])
def test_every_line_ends_in_the_rhyme_asked_for(model, rhyme, group, prefix):
    for seed in SEEDS:
        text = model.generate(prefix, LONG, seed=seed, lines=4, rhyme=rhyme)
        assert rhymes_of(model, prefix, text) == [group] * 4


def test_auto_rhymes_with_the_prefixs_last_line(model):
    prefix = "窗外的麻雀\n在电线杆上多嘴\n"  # 雀 is 乜斜, 嘴 灰堆: the last line counts
    for seed in SEEDS:
        text = model.generate(prefix, LONG, seed=seed, lines=4, rhyme="auto")
        assert rhymes_of(model, prefix, text) == ["灰堆"] * 4
    text = model.generate(prefix + "我", LONG, seed=0, lines=2, rhyme="auto")  # an unfinished line does not count
    assert rhymes_of(model, prefix + "我", text) == ["灰堆"] * 2


@pytest.mark.parametrize("prefix", ["", "分开"])
def test_auto_without_a_finished_line_rhymes_with_the_first_line_written(model, prefix):
    firsts = set()
    for seed in SEEDS:
        text = model.generate(prefix, LONG, seed=seed, lines=4, rhyme="auto")
        keys = rhymes_of(model, prefix, text)
        assert keys == [keys[0]] * 4 and keys[0] in GROUPS
        firsts.add(keys[0])
    assert len(firsts) > 1  # the first line chose, not a fixed group


def test_english_rhymes_by_the_cmu_dictionary(english):
    assert isinstance(english.rhymes.scheme, English)
    for seed in SEEDS:
        text = english.generate("the time ", 1000, seed=seed, lines=4, rhyme="time")
        assert len(text) < 900  # the length never bent a line
        lines = text.split("\n")[:-1]
        assert len(lines) == 4 and all(English().key(line) == english_key("time") for line in lines), lines


def test_rhyme_is_refused_clearly(model, english):
    with pytest.raises(ValueError, match="rhyme group"):
        model.generate("分开", 100, rhyme="xyz")
    with pytest.raises(ValueError, match="English word"):
        english.generate("the ", 100, rhyme="xqzvvk")
    torch.manual_seed(0)
    few = CharRNN(Vocab(list("我你的爱 \n")).to_dict(), embed_size=4, hidden_size=8).eval()
    with pytest.raises(errors.NoRhyme, match="knows no word") as error:
        few.generate("我", 100, rhyme="江阳")
    assert (error.value.option, error.value.value) == ("rhyme", "江阳")  # none of its characters is of 江阳
    text = few.generate("我", 100, seed=1, lines=3, rhyme="梭波")  # 我 and 的 are
    assert rhymes_of(few, "我", text) == ["梭波"] * 3


# No repeats and the repetition penalty ----------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4])
def test_no_ngram_is_written_twice(model, n):
    for prefix in PREFIXES:
        for seed in [*SEEDS, None]:
            temperature = 0 if seed is None else 1.0
            text = model.generate(prefix, 200, temperature=temperature, seed=seed, no_repeat_ngram=n)
            assert len(text) == 200
            assert_form(model, prefix, text, 200, no_repeat_ngram=n)


def test_greedy_decoding_repeats_itself_without_the_rule(model):
    text = model.generate("分开", 200, temperature=0)
    assert broken_rules(model, "分开", text, 200, no_repeat_ngram=4)


@pytest.mark.parametrize("mixed", [True, False], ids=["mixed with its counts", "the network alone"])
def test_the_repetition_penalty_is_ctrls_on_the_logits(tiny_model_dir, mixed):
    """The first step's distribution against a hand computation from one forward pass: the prefix's characters
    (not its line break or spaces) have their logits divided by θ (multiplied where negative). A model that mixes
    in its counts has the mixture's log-probabilities as logits; the network alone, its raw logits."""
    model = CharRNN.from_pretrained(tiny_model_dir)
    assert model.count_weight
    if not mixed:
        model.mix_counts(None, 0.0)
    prefix, theta = "我 不 你\n的 ", 1.3
    assert not model.vocab.unknown(prefix)
    ids = model.vocab.encode(prefix)
    logits = forward_logits(model, prefix)[0]
    used = sorted({i for i, c in zip(ids, prefix) if c not in SPACES})
    penalised = logits.clone()
    penalised[used] = torch.where(logits[used] > 0, logits[used] / theta, logits[used] * theta)
    expected = decoding_distribution(model, penalised)
    plain = decoding_distribution(model, logits)
    assert (expected[used] - plain[used]).abs().max() > 1e-3  # the penalty shows in what is compared
    shown = set()
    for seed in SEEDS:
        step = next(model.stream(prefix, 5, seed=seed, details=True, repetition_penalty=theta))
        chosen = model.vocab.stoi[step.char]
        assert step.prob == pytest.approx(expected[chosen].item(), rel=1e-4)
        order = [i for i in expected.argsort(descending=True).tolist() if i != chosen][:5]
        assert [c for c, _ in step.alternatives] == [model.vocab.itos[i] for i in order]
        assert [p for _, p in step.alternatives] == pytest.approx(expected[order].tolist(), rel=1e-4)
        shown.update([step.char, *(c for c, _ in step.alternatives)])
    assert shown & {"\n", " "} and shown & set(prefix) - set(SPACES)  # used characters, penalised or spared


def test_the_repetition_penalty_lowers_the_share_of_repeated_characters(model):
    def repeated(theta):
        """The mean share of a text's characters (spaces and breaks aside) that it has written before."""
        shares = []
        for seed in SEEDS:
            chars = [c for c in model.generate("分开", 100, seed=seed, repetition_penalty=theta) if c not in SPACES]
            shares.append(1 - len(set(chars)) / len(chars))
        return sum(shares) / len(shares)

    assert repeated(2.0) < repeated(1.3) < repeated(1.0) - 0.05


# All at once -------------------------------------------------------------------------------------------------

def composed(heads, seed):
    return dict(acrostic=heads, lines=6, rhyme="江阳", no_repeat_ngram=3, top_p=0.9, seed=seed,
                repetition_penalty=1.3)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_all_options_at_once_keep_every_rule(model, heads, prefix):
    for seed in SEEDS:
        options = composed(heads, seed)
        text = model.generate(prefix, LONG, **options)
        assert_form(model, prefix, text, LONG, **options)


def test_the_same_seed_writes_the_same_text_and_stream_joins_to_generate(model, heads):
    options = {**composed(heads, 11), "rhyme": "auto"}
    text = model.generate("分开", LONG, **options)
    assert model.generate("分开", LONG, **options) == text
    assert "".join(model.stream("分开", LONG, **options)) == text
    assert "".join(step.char for step in model.stream("分开", LONG, details=True, **options)) == text
    assert model.generate("分开", LONG, **{**options, "seed": 12}) != text


def rows(heads, temperatures=(0, 1.0, 1.0, 1.0, 1.0, 0)) -> list[tuple[str, Options]]:
    """Six sequences, each its own prefix, seed and options."""
    return [(prefix, replace(options, temperature=t)) for t, (prefix, options) in zip(temperatures, [
        ("分开", Options(lines=3)),
        ("窗外的麻雀\n", Options(top_k=5, seed=3, acrostic=heads[:3])),
        ("", Options(top_p=0.8, seed=4, rhyme="江阳", lines=4)),
        ("窗外的麻雀\n在电线杆上多嘴\n", Options(seed=5, rhyme="auto", lines=3, no_repeat_ngram=3)),
        ("我", Options(seed=6, repetition_penalty=1.5, no_repeat_ngram=2)),
        ("分开", Options(no_repeat_ngram=4, acrostic=heads[:2], rhyme="auto", top_k=3)),
    ])]


def decode(batch) -> list[str]:
    texts = [""] * len(batch.sequences)
    for pieces in batch:
        for row, piece in enumerate(pieces):
            texts[row] += "".join(piece)
    return texts


def test_a_batch_of_different_options_writes_what_each_writes_alone(model, heads):
    prefixes, options = zip(*rows(heads))
    together = decode(Batch(model, list(prefixes), 150, list(options)))
    alone = [model.generate(p, 150, **asdict(o)) for p, o in zip(prefixes, options)]
    assert together == alone
    assert len(set(alone)) == 6
    for p, o, text in zip(prefixes, options, alone):
        assert_form(model, p, text, 150, **asdict(o))


def test_a_batch_of_different_temperatures_writes_what_each_writes_alone(model, heads):
    prefixes, options = zip(*rows(heads, temperatures=[0, 0.7, 1.3, 1.0, 0.9, 0]))
    together = decode(Batch(model, list(prefixes), 150, list(options)))
    assert together == [model.generate(p, 150, **asdict(o)) for p, o in zip(prefixes, options)]


# Details ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.7, None), (1.0, 5)])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_details_give_each_characters_probability_under_the_decoding_distribution(model, prefix, temperature,
                                                                                  top_k):
    for seed in SEEDS[:4]:
        steps = list(model.stream(prefix, 30, temperature=temperature, top_k=top_k, seed=seed, details=True))
        text = "".join(step.char for step in steps)
        assert text == model.generate(prefix, 30, temperature=temperature, top_k=top_k, seed=seed)
        expected = decoding_distribution(model, forward_logits(model, prefix, text), temperature, top_k)
        for step, row in zip(steps, expected):
            assert 0 < step.prob <= 1 and not step.forced
            assert step.prob == pytest.approx(row[model.vocab.stoi[step.char]].item(), rel=1e-3, abs=1e-6)
            probs = [p for _, p in step.alternatives]
            assert len(step.alternatives) <= 5 and probs == sorted(probs, reverse=True)
            assert step.char not in [c for c, _ in step.alternatives] and all(p > 0 for p in probs)
            assert step.prob + sum(probs) <= 1 + 1e-6
            assert probs == pytest.approx([row[model.vocab.stoi[c]].item() for c, _ in step.alternatives],
                                          rel=1e-3, abs=1e-6)
            if top_k:
                assert len(step.alternatives) == top_k - 1  # the whole top 5 but the chosen one


def test_forced_steps_are_flagged_with_probability_one(model, heads):
    """An acrostic on a mid-line prefix with only just room: every line break and head is forced."""
    for seed in SEEDS:
        steps = list(model.stream("分开", 7, seed=seed, details=True, acrostic=heads[:2]))
        text = "".join(step.char for step in steps)
        assert len(text) == 7 and text[::3] == "\n\n\n" and text[1::3] == heads[:2]
        assert [k for k, step in enumerate(steps) if step.forced] == [0, 1, 3, 4, 6]
        assert all(step.prob == 1.0 and step.alternatives == () for step in steps if step.forced)
        assert all(step.prob < 1 and step.alternatives for step in steps if not step.forced)


# Candidates --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", [{}, {"lines": 3, "rhyme": "江阳", "no_repeat_ngram": 3}])
def test_candidates_are_ranked_by_the_models_own_log_probability(model, form):
    for seed in SEEDS[:3]:
        found = model.candidates("分开", 4, 120, seed=seed, temperature=0.9, **form)
        assert len(found) == 4
        assert [c.mean_logprob for c in found] == sorted((c.mean_logprob for c in found), reverse=True)
        for c in found:
            assert c.mean_logprob == pytest.approx(c.logprob / len(c.text))
            assert c.perplexity == pytest.approx(math.exp(-c.mean_logprob))
            assert c.logprob == pytest.approx(logprob(model, "分开", c.text), abs=1e-3)
            assert_form(model, "分开", c.text, 120, **form)
        assert model.generate("分开", 120, seed=seed, temperature=0.9, **form) in [c.text for c in found]


def test_the_candidates_log_probability_is_the_models_not_the_samplers(model):
    """At a low temperature with top-k the sampler is far surer than the model: the score must not follow it."""
    (c,) = model.candidates("窗外的麻雀\n", 1, 40, temperature=0.3, top_k=2, seed=1)
    assert c.logprob == pytest.approx(logprob(model, "窗外的麻雀\n", c.text), abs=1e-3)
    assert c.logprob < 40 * math.log(0.9)


@pytest.mark.parametrize("n", [0, 17, -1, 2.0, True])
def test_candidates_refuse_a_bad_n(model, n):
    with pytest.raises(errors.BadValue, match="n must be") as error:
        model.candidates("分开", n, 20)
    assert error.value.option == "n" and error.value.value is n


# A vocabulary without line breaks ---------------------------------------------------------------------------

def test_a_model_without_line_breaks_refuses_the_forms_that_need_them(lyrics_file):
    vocab = Vocab.build(lyrics_file.read_text(encoding="utf-8"), newlines="space")
    assert "\n" not in vocab
    torch.manual_seed(0)
    model = CharRNN(vocab.to_dict(), embed_size=8, hidden_size=16).eval()
    assert len(model.generate("分开", 20, seed=1, no_repeat_ngram=2, repetition_penalty=1.2)) == 20
    for form in ({"lines": 2}, {"acrostic": "我你"}, {"rhyme": "auto"}, {"rhyme": "江阳"}):
        with pytest.raises(errors.NoLineBreak, match="no line break") as error:
            model.generate("分开", 100, **form)
        assert error.value.option == next(iter(form))


# Any prefix, any options -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def known_han(model):
    return [c for c in model.vocab.chars if is_han(c)][:60]


@st.composite
def cases(draw, known):
    odd = ["\n", " ", "\u3000", "😀", "\x00", "\x07", "\r", "龘"]
    prefix = draw(st.text(st.sampled_from(known + odd), max_size=12))
    acrostic = draw(st.none() | st.text(st.sampled_from(known + ["龘"]), min_size=1, max_size=4))
    options = dict(
        lines=draw(st.none() | st.integers(1, 5)), acrostic=acrostic,
        rhyme=draw(st.sampled_from([None, "auto", *GROUPS])), no_repeat_ngram=draw(st.integers(0, 5)),
        repetition_penalty=draw(st.just(1.0) | st.floats(1, 2)), temperature=draw(st.just(0.0) | st.floats(0, 1.5)),
        top_k=draw(st.none() | st.integers(1, 20)), top_p=draw(st.none() | st.floats(0.5, 1)),
        seed=draw(st.integers(0, 2**32 - 1)))
    return prefix, draw(st.integers(0, 200)), options


def test_any_prefix_and_options_give_a_clear_error_or_keep_the_form(model, known_han):
    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(cases(known_han))
    def check(case):
        prefix, length, options = case
        acrostic, lines = options["acrostic"], options["lines"]
        unknown = bool(acrostic) and "龘" in acrostic
        too_few = bool(acrostic) and lines is not None and lines < len(acrostic)
        too_short = length < fewest(prefix, lines, acrostic)
        try:
            text = model.generate(prefix, length, **options)
        except errors.OptionError as error:
            message = str(error)
            assert unknown or too_few or too_short, message
            assert (isinstance(error, errors.UnknownCharacters) and "龘" in error.characters) if unknown else \
                (isinstance(error, errors.TooShort) and error.option == ("lines" if too_few else "length"))
            return
        assert not (unknown or too_few or too_short), text
        assert_form(model, prefix, text, length, **options)
        if options["lines"] is None and not acrostic:
            assert len(text) == length

    check()


# Bugs found once, pinned --------------------------------------------------------------------------------------

def test_a_line_with_no_character_of_its_own_still_rhymes(model):
    """generate("窗外的麻雀\\n", 400, temperature=0.5, seed=1, rhyme="发花", lines=8) begins ' \\n'."""
    for seed in range(4):
        text = model.generate("窗外的麻雀\n", LONG, temperature=0.5, seed=seed, rhyme="发花", lines=8)
        assert rhymes_of(model, "窗外的麻雀\n", text) == ["发花"] * 8, text


def test_an_acrostic_line_rhymes_after_its_head(model, heads):
    """generate("窗外的麻雀\\n", 400, temperature=0, rhyme="江阳", acrostic="秋风花我") == "秋 \\n风想\\n花 \\n我想\\n"."""
    text = model.generate("窗外的麻雀\n", LONG, temperature=0, rhyme="江阳", acrostic=heads)
    assert rhymes_of(model, "窗外的麻雀\n", text) == ["江阳"] * 4, text


def test_a_redrawn_line_end_keeps_the_no_repeat_rule(model):
    """generate("窗外的麻雀\\n", 400, temperature=0, rhyme="江阳", lines=4, no_repeat_ngram=2) == "让\\n想\\n想\\n想\\n"."""
    text = model.generate("窗外的麻雀\n", LONG, temperature=0, rhyme="江阳", lines=4, no_repeat_ngram=2)
    assert_form(model, "窗外的麻雀\n", text, LONG, rhyme="江阳", lines=4, no_repeat_ngram=2)


# The command line ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli(tiny_model_dir, heads):
    """Three runs of python -m charrnn at once (each spends most of its time importing torch)."""
    common = [sys.executable, "-m", "charrnn", "generate", "--model", str(tiny_model_dir), "--prefix", "分开",
              "--seed", "1"]
    runs = {
        "candidates": ["--lines", "8", "--acrostic", heads, "--rhyme", "auto", "--no-repeat-ngram", "4",
                       "--candidates", "4", "--length", "300"],
        "bad acrostic": ["--acrostic", "龘", "--length", "100"],
        "lines": ["--lines", "3", "--length", "200"],
    }
    procs = {name: subprocess.Popen(common + args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, encoding="utf-8") for name, args in runs.items()}
    return {name: (*p.communicate(timeout=120), p.returncode) for name, p in procs.items()}


def test_cli_prints_ranked_candidates(cli, model, heads):
    out, err, code = cli["candidates"]
    assert code == 0, err
    found = model.candidates("分开", 4, 300, temperature=0.8, seed=1, lines=8, acrostic=heads, rhyme="auto",
                             no_repeat_ngram=4)
    expected = "".join(f"#{rank}  mean log-probability {c.mean_logprob:.3f}  perplexity {c.perplexity:.1f}\n"
                       f"分开{c.text}\n\n" for rank, c in enumerate(found, 1))
    assert out == expected
    headers = [line for line in out.split("\n") if line.startswith("#")]
    assert [h.split()[0] for h in headers] == ["#1", "#2", "#3", "#4"]
    scores = [float(h.split()[3]) for h in headers]
    assert scores == sorted(scores, reverse=True)


def test_cli_refuses_a_bad_acrostic_with_nothing_on_stdout(cli):
    out, err, code = cli["bad acrostic"]
    assert code == 2 and out == ""
    assert err.startswith("error:") and "'龘'" in err


def test_cli_streams_the_prefix_and_the_lines(cli, model):
    out, err, code = cli["lines"]
    assert code == 0, err
    text = model.generate("分开", 200, temperature=0.8, seed=1, lines=3)
    assert out == "分开" + text + "\n" and text.count("\n") == 3
