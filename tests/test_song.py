"""Co-writing on tiny real models: a melody's line lengths, rhyme schemes, keywords and rewriting around kept lines,
each checked from pypinyin and pronouncing directly (bench/checks.py), not by the decoder's own bookkeeping."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypinyin import Style, lazy_pinyin

from bench.checks import FINALS, broken_rhymes, length, lines_of, rhyme_of, sung, times_held, words
from charrnn import CharRNN, errors, song
from charrnn.decoding import Batch
from charrnn.form import Options
from charrnn.rhyme import GROUPS

SEEDS = range(6)
LONG = 1000


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return CharRNN.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def english(english_model_dir):
    return CharRNN.from_pretrained(english_model_dir)


def assert_lengths(text: str, pattern: list[int], english: bool = False) -> None:
    assert text.endswith("\n"), repr(text)
    got = [length(line, english) for line in lines_of(text)]
    assert got == [pattern[k % len(pattern)] for k in range(len(got))], (got, text)


# Line lengths --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", ["7,7,5,7", "5 5 7 5", [3, 9], "4"])
@pytest.mark.parametrize("prefix", ["", "窗外的麻雀\n"])
def test_every_line_has_the_length_asked_for(model, pattern, prefix):
    lengths = list(song.line_lengths(pattern))
    for seed in SEEDS:
        text = model.generate(prefix, LONG, temperature=0.8, seed=seed, line_lengths=pattern)
        assert len(lines_of(text)) == max(len(lengths), 1)  # one verse of the pattern
        assert_lengths(text, lengths)


def test_a_longer_lyric_repeats_the_pattern_and_a_prefixs_line_counts(model):
    text = model.generate("", LONG, seed=1, lines=6, line_lengths="7,5")
    assert_lengths(text, [7, 5])
    assert len(lines_of(text)) == 6
    text = model.generate("天青色", LONG, seed=1, line_lengths="7,5")  # the prefix sang 3 of the first 7
    assert_lengths("天青色" + text, [7, 5])


def test_english_lines_have_their_syllables(english):
    for seed in SEEDS:
        text = english.generate("", LONG, temperature=0.8, seed=seed, line_lengths="8,6,8,6")
        assert_lengths(text, [8, 6, 8, 6], english=True)
        assert all(words(line) for line in lines_of(text))


def test_a_lines_last_character_is_one_the_model_would_end_a_line_on(model):
    """The last character of a line is weighed by how likely the line break is after it (batch.look_ahead): the
    model finds the breaks of its lines likelier than those of the same text cut every 7 characters."""
    ours, cut = [], []
    for seed in SEEDS:
        text = model.generate("", LONG, temperature=0.8, seed=seed, line_lengths="7,7,7,7")
        ours += [break_logprob(model, text[:end]) for end in line_ends(text)]
        free = "".join(c for c in model.generate("", 60, temperature=0.8, seed=seed) if sung(c))
        naive = "\n".join(free[k:k + 7] for k in range(0, 28, 7)) + "\n"
        cut += [break_logprob(model, naive[:end]) for end in line_ends(naive)]
    assert sum(ours) / len(ours) > sum(cut) / len(cut)


def break_logprob(model, context: str) -> float:
    return -model.score("\n", context, details=False).nll


def line_ends(text: str) -> list[int]:
    return [k for k, c in enumerate(text) if c == "\n"]


# Schemes --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["AABB", "ABAB", "XAXA", "AAAA BBBB"])
def test_lines_of_a_letter_rhyme(model, scheme):
    letters = scheme.replace(" ", "")
    for seed in SEEDS:
        text = model.generate("", LONG, temperature=0.8, seed=seed, scheme=scheme)
        assert len(lines_of(text)) == len(letters)
        assert broken_rhymes(text, letters) == []


def test_a_given_rhyme_holds_with_the_lengths(model):
    for seed in SEEDS:
        text = model.generate("", LONG, seed=seed, line_lengths="7,7,5,7", scheme="AABB A=江阳 B=花")
        assert_lengths(text, [7, 7, 5, 7])
        assert broken_rhymes(text, "AABB", {"A": "江阳", "B": "发花"}) == []


def test_english_schemes_rhyme_by_the_cmu_dictionary(english):
    rhymed = total = 0
    for seed in SEEDS:
        text = english.generate("", LONG, temperature=0.8, seed=seed, line_lengths="8,6,8,6", scheme="ABAB A=time")
        assert_lengths(text, [8, 6, 8, 6], english=True)
        total += 4
        rhymed += 4 - len(broken_rhymes(text, "ABAB", {"A": rhyme_of("time")}))
    assert rhymed >= 0.9 * total  # the length outranks the rhyme where no word has both


def test_the_rhyme_option_is_the_scheme_of_one_letter(model):
    for seed in SEEDS[:3]:
        text = model.generate("", LONG, seed=seed, lines=4, rhyme="江阳")
        assert broken_rhymes(text, "A", {"A": "江阳"}) == []
    with pytest.raises(errors.BadValue, match="scheme"):
        model.generate("", LONG, rhyme="江阳", scheme="AABB")


# Keywords -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keywords(model):
    """Words the tiny model knows (its 6,000 characters of lyrics lack many)."""
    found = [w for w in ["回忆", "天空", "爱情", "我们", "时间"] if not model.vocab.unknown(w)]
    single = [c for c in "雨风你心" if c in model.vocab]
    assert len(found) >= 2 and single
    return found[:2] + single[:1]


@pytest.mark.parametrize("in_order", [False, True])
def test_each_keyword_appears_once(model, keywords, in_order):
    starts = []
    for seed in SEEDS:
        for form in (dict(lines=4), dict(line_lengths="7,7,7,7", scheme="AABB")):
            text = model.generate("", LONG, temperature=0.8, seed=seed, keywords=keywords, keywords_in_order=in_order,
                                  **form)
            assert [times_held(text, k) for k in keywords] == [1] * len(keywords), text
            places = [text.find(k) for k in keywords]
            if in_order:
                assert places == sorted(places), text
            if "line_lengths" in form:
                assert_lengths(text, [7])
                assert broken_rhymes(text, "AABB") == []
            starts += [text.find(k) == 0 for k in keywords]
    assert sum(starts) < len(starts) / 2  # not glued to the start


def test_english_keywords_are_whole_words(english):
    for temperature in (0.0, 0.8):  # greedy too: where the lift never wins, each is written before it is too late
        text = english.generate("", LONG, temperature, seed=1, lines=4, keywords="machine, time")
        assert text.count("\n") == 4 and all(times_held(text, k, True) == 1 for k in ("machine", "time")), text
        assert text.rindex("machine") < 4 * 40 + 40, "written within the lines' typical length, not run on to"
    for seed in SEEDS:
        text = english.generate("", LONG, temperature=0.8, seed=seed, line_lengths="8,6,8,6",
                                keywords="machine, time")
        assert times_held(text, "machine", True) == 1 and times_held(text, "time", True) == 1, text
        assert_lengths(text, [8, 6, 8, 6], english=True)


# Bad requests: a clear error naming the field, before any decoding -------------------------------------------

@pytest.mark.parametrize("options, field", [
    (dict(line_lengths="0,7"), "line_lengths"), (dict(line_lengths="7,100"), "line_lengths"),
    (dict(line_lengths="seven"), "line_lengths"), (dict(line_lengths=[7.5]), "line_lengths"),
    (dict(line_lengths="7,7", acrostic="我你", scheme="AA"), None),
    (dict(line_lengths="1", acrostic="我", scheme="A"), "line_lengths"),
    (dict(scheme="A1B"), "scheme"), (dict(scheme="AB C=江阳"), "scheme"), (dict(scheme="AB A=xyz"), "scheme"),
    (dict(scheme="X=江阳 X"), "scheme"), (dict(scheme=7), "scheme"),
    (dict(keywords="龘"), "keywords"), (dict(keywords="a,b,c,d,e,f"), "keywords"), (dict(keywords=["雨", 3]), "keywords"),
    (dict(keywords="x" * 21), "keywords"), (dict(keywords_in_order="yes"), "keywords_in_order"),
    (dict(line_lengths="2,2", keywords="回忆,天空"), "line_lengths"),
])
def test_an_impossible_request_names_its_field(model, options, field):
    if field is None:
        model.generate("", LONG, seed=0, **options)
        return
    with pytest.raises(errors.OptionError) as error:
        model.generate("", LONG, seed=0, **options)
    assert error.value.option == field, str(error.value)


def test_the_lines_decide_the_length_within_what_a_request_may_write(model):
    assert_lengths(model.generate("", 20, seed=0, line_lengths="7,7,7,7"), [7])  # 20 is raised to what 4 lines need
    with pytest.raises(errors.BadValue, match="lines that fit in 1,000 characters") as error:
        model.generate("", 20, line_lengths="50", lines=30)  # 1,530 characters at the least
    assert error.value.option == "line_lengths"


# Keep and rewrite -----------------------------------------------------------------------------------------

def test_rewriting_keeps_the_kept_lines_and_the_form(model, keywords):
    for seed in SEEDS[:4]:
        lyric = model.generate("", LONG, seed=seed, line_lengths="7", scheme="AABB").rstrip("\n")
        new = model.rewrite(lyric, "1,3", temperature=0.8, seed=seed, line_lengths="7", scheme="AABB",
                            keywords=keywords[:1])
        old_lines, new_lines = lyric.split("\n"), new.split("\n")
        assert len(new_lines) == 4
        assert new_lines[0] == old_lines[0] and new_lines[2] == old_lines[2]
        assert new_lines[1] != old_lines[1] or new_lines[3] != old_lines[3]
        assert_lengths(new + "\n", [7])
        assert broken_rhymes(new + "\n", "AABB") == []
        assert times_held(new, keywords[0]) >= 1


def test_a_line_before_a_kept_one_is_chosen_by_how_well_the_kept_one_follows(model):
    """Of the candidates for the first line, rewrite takes the one after which the kept line is likeliest (with the
    candidate's own likelihood): it beats the candidates' median on that joint score."""
    lyric = "窗外的麻雀\n在电线杆上多嘴"
    chosen = model.rewrite(lyric, [2], seed=3).split("\n")[0] + "\n"
    pool = model.candidates("", 8, LONG, seed=song.run_seed(3, 0), lines=1)
    kept = "在电线杆上多嘴\n"

    def joint(text: str) -> float:
        return (-model.score(text, "", details=False).nll - model.score(kept, text, details=False).nll) / (
            len(text) + len(kept))

    scores = sorted(joint(c.text) for c in pool)
    assert chosen in {c.text for c in pool}
    assert joint(chosen) == pytest.approx(scores[-1], abs=0.05)


def test_a_next_line_model_proposes_lines_where_no_line_form_is_asked(model, fused_dir):
    """Its runs join the candidates, weighed alike by the model (the kept lines stay); where the run has a form only
    the character model's decoder keeps, it is not asked at all."""
    from charrnn import NextLine

    writer, asked = NextLine.from_pretrained(fused_dir), []

    def write_line(line: str, seed: int | None) -> str:
        asked.append((line, seed))
        return writer.next_line(line, 0.8, seed=seed)

    lyric = "窗外的麻雀\n在电线杆上多嘴\n你说这一句\n很有夏天的感觉"
    new = model.rewrite(lyric, [1, 3], 0.8, seed=5, next_line=write_line).split("\n")
    assert new[0] == "窗外的麻雀" and new[2] == "你说这一句" and len(new) == 4
    assert [line for line, _ in asked[:2]] == ["窗外的麻雀"] * 2, "each run's lines answer the line before it"
    assert len(asked) == 2 * (song.REWRITE_CANDIDATES // 2), "half as many runs as candidates, a line each"
    assert model.rewrite(lyric, [1, 3], 0.8, seed=5, next_line=writer).split("\n") == new, "a NextLine or a function"
    asked.clear()
    model.rewrite(lyric, [1, 3], 0.8, seed=5, next_line=write_line, scheme="ABAB")
    assert asked == [], "a scheme is kept by the character model's decoder alone"
    model.rewrite(lyric, [1], 0.8, seed=5, next_line=write_line)  # one run of three lines
    first_run = asked[:3]
    assert first_run[0][0] == "窗外的麻雀" and first_run[1][0] != "窗外的麻雀", "a run's second line answers its first"


def test_proposed_runs_that_repeat_a_phrase_are_left_out():
    def echo(line: str, seed) -> str:
        return "我爱你我爱你"

    assert song.chained(echo, "窗外\n", 1, 2, 1, {}) == ["我爱你我爱你\n"]
    assert song.chained(echo, "窗外\n", 1, 2, 1, {"no_repeat_ngram": 3}) == []
    assert song.chained(echo, "窗外\n", 1, 2, 1, {"keywords": ("雨",)}) == []
    assert song.repeats_ngram("我爱\n我爱", 2) and song.repeats_ngram("爱\n我爱\n我", 3), "across a line break too"
    assert not song.repeats_ngram("我爱\n我爱\n", 3), "as the decoder never bans a line break, one may end it"
    assert song.chained(lambda line, seed: "同一行", "窗外\n", 1, 4, 1, {}) == ["同一行\n"], "each proposal once"


def test_blank_lines_are_kept_and_bad_keeps_refused(model):
    new = model.rewrite("我\n\n你", "", seed=1)
    assert new.split("\n")[1] == "" and len(new.split("\n")) == 3
    new = model.rewrite("我\n\n你\n他", "1", seed=1, line_lengths="2,3,5")  # a blank line is no line of the pattern
    assert [sung(line) for line in new.split("\n")] == [1, 0, 3, 5]
    with pytest.raises(errors.BadValue) as error:
        model.rewrite("我\n" * 100 + "你", "1")
    assert error.value.option == "lyric"
    with pytest.raises(errors.BadValue) as error:
        model.rewrite("我\n你", "1", rhyme="江阳", scheme="AA")
    assert error.value.option == "scheme"
    for keep in ("0", "4", "one", [1.5], "1,,x"):
        with pytest.raises(errors.BadValue) as error:
            model.rewrite("我\n\n你", keep)
        assert error.value.option == "keep"
    with pytest.raises(errors.EmptyText):
        model.rewrite("  ", "")


def test_a_marked_lyric_reads_its_kept_lines():
    assert song.marked("*我\n你\n* 他") == ("我\n你\n他", frozenset({0, 2}))


# Any pattern, scheme, keywords and kept lines ---------------------------------------------------------------

@st.composite
def songs(draw, known: list[str]):
    pattern = draw(st.lists(st.integers(1, 9), min_size=1, max_size=4))
    letters = draw(st.text(st.sampled_from("ABX"), min_size=1, max_size=4))
    given = draw(st.sampled_from(["", " A=江阳", " B=花", " A=龘"]))
    scheme = draw(st.none() | st.just(letters + (given if given.strip()[0] in letters else "") if given else letters))
    keywords = draw(st.lists(st.sampled_from(known), max_size=3, unique=True))
    options = dict(line_lengths=draw(st.none() | st.just(pattern)), scheme=scheme, keywords=keywords,
                   keywords_in_order=draw(st.booleans()), acrostic=draw(st.none() | st.sampled_from(known[:3])),
                   lines=draw(st.none() | st.integers(1, 6)), no_repeat_ngram=draw(st.sampled_from([0, 3])),
                   temperature=draw(st.sampled_from([0.0, 0.8, 1.2])), seed=draw(st.integers(0, 2**32 - 1)))
    return draw(st.sampled_from(["", "窗外的麻雀\n", "分开"])), options


def test_any_song_keeps_its_form_or_is_refused_clearly(model):
    known = [w for w in ["回忆", "我们", "你", "的", "爱", "天", "心", "我"] if not model.vocab.unknown(w)]

    @settings(max_examples=80, deadline=None, derandomize=True)
    @given(songs(known))
    def check(case):
        prefix, options = case
        try:
            text = model.generate(prefix, LONG, **options)
        except errors.OptionError as error:
            assert error.option in ("line_lengths", "scheme", "lines", "acrostic", "keywords"), str(error)
            return
        lines = (prefix.split("\n")[-1] + text).split("\n")[:-1]
        if options["acrostic"] and prefix and not prefix.endswith("\n"):
            lines = lines[1:]  # the acrostic's own line break ended the prefix's line
        if options["line_lengths"]:
            pattern = options["line_lengths"]
            assert [sung(line) for line in lines] == [pattern[k % len(pattern)] for k in range(len(lines))], text
        for keyword in options["keywords"]:
            assert times_held(text, keyword) >= 1, (keyword, text)
        if options["scheme"] and options["line_lengths"] and not options["acrostic"]:
            parsed = song.scheme(options["scheme"])
            given = {k: GROUPS.get(v) and v or FINALS.get(lazy_pinyin(v, style=Style.FINALS, strict=True)[0])
                     for k, v in parsed.given.items()}
            assert broken_rhymes("\n".join(lines) + "\n", parsed.letters, given) == [], text

    check()


def test_a_seeded_song_writes_the_same_alone_or_batched(model, keywords):
    forms = [dict(line_lengths="7,5", scheme="AB"), dict(keywords=keywords, lines=3),
             dict(line_lengths="5", scheme="AA", keywords=keywords[:1]), dict(lines=2)]
    alone = [model.generate("", LONG, temperature=0.9, seed=7, **form) for form in forms]
    batch = Batch(model, [""] * 4, LONG, [Options(temperature=0.9, seed=7, **form) for form in forms])
    for _ in batch:
        pass
    assert [c.text for c in batch.candidates()] == alone


def test_any_english_song_keeps_its_length_and_keywords_or_is_refused_clearly(english):
    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(st.lists(st.integers(1, 10), min_size=1, max_size=4), st.sampled_from([None, "AABB", "ABAB A=time", "XA"]),
           st.lists(st.sampled_from(["time", "machine", "light", "the"]), max_size=2, unique=True),
           st.sampled_from([0.0, 0.8, 1.2]), st.integers(0, 2**32 - 1))
    def check(pattern, scheme, keywords, temperature, seed):
        try:
            text = english.generate("", LONG, temperature, seed=seed, line_lengths=pattern, scheme=scheme,
                                    keywords=keywords)
        except errors.OptionError as error:
            assert error.option == "line_lengths" and keywords, str(error)  # the keywords need more room
            return
        assert_lengths(text, pattern, english=True)
        for keyword in keywords:
            assert times_held(text, keyword, True) == 1, (keyword, text)

    check()
