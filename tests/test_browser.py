"""The page in a real browser (Debian's Chromium through Playwright): choose, type, shape, write, watch, hover,
copy, pick a candidate, stop.

Needs /usr/bin/chromium and fonts-noto-cjk: `make browser`. Screenshots go to test-output/.
"""
from pathlib import Path
from urllib.parse import urlparse

import pytest

import app
from test_app import LSTM, CountingModel, wait_until
from bench.checks import broken_rhymes, sung
from engine.catalog import Variant, load_models
from engine.settings import Settings
from ui.lyric import visible

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
OUT = Path(__file__).resolve().parent.parent / "test-output"
SLOW = "Jay Chou lyrics · LSTM (slowed down)"
ENGLISH = "The Time Machine · GRU"
pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium: run `make browser`"),
              pytest.mark.browser, pytest.mark.server]


# Records the length of every Compare card's text at each change the page makes, however fast the models write.
WATCH_CARDS = """() => {
    window.cardLengths = [];
    const lengths = () => [...document.querySelectorAll('.compare-card .lyric')].map(l => l.innerText.length);
    new MutationObserver(() => window.cardLengths.push(lengths())).observe(
        document.body, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def server(tiny_model_dir, english_model_dir, next_line_dir, fused_dir):
    variants = load_models([str(tiny_model_dir), str(english_model_dir)], Settings())[0]
    variants[SLOW] = Variant("test", CountingModel(variants[LSTM].model, delay=0.005), {}, variants[LSTM].bigram)
    demo = app.build_demo(variants, load_models([str(next_line_dir), str(fused_dir)], Settings())[1])
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield url, variants
    demo.close()


@pytest.fixture(scope="module")
def page(server):
    OUT.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        page.goto(server[0])
        page.locator("#lyric").wait_for()
        yield page
        browser.close()


def lyric(page) -> str:
    """The whole lyric as the page shows it (prefix and continuation), as plain text."""
    return page.locator("#lyric .lyric").inner_text()


def written(page) -> int:
    """Generated characters on the page, line breaks included (the prefix has its own span)."""
    return page.locator("#lyric .lyric .c").count() + page.locator("#lyric .lyric > br").count()


def choose(page, variant: str) -> None:
    page.get_by_label("Model", exact=True).click()
    page.get_by_role("option", name=variant, exact=True).click()
    sync_api.expect(page.get_by_label("Model", exact=True)).to_have_value(variant)


def set_form(page, length="200", lines="0", acrostic="", rhyme="off") -> None:
    page.get_by_label("range slider for Length").fill(length)
    page.get_by_label("number input for Lines").fill(lines)
    page.get_by_label("number input for Lines").press("Enter")
    page.get_by_label("Acrostic (藏头)").fill(acrostic)
    page.get_by_label("Rhyme", exact=True).click()
    page.get_by_role("option", name=rhyme).first.click()


def write_and_wait(page) -> None:
    before = page.locator("#lyric .lyric").inner_html()
    page.get_by_role("button", name="Write", exact=True).click()
    wait_until(lambda: page.locator("#lyric .lyric").inner_html() != before, 15, "nothing was written")
    page.wait_for_timeout(1500)  # the tiny model writes 200 characters well within this


def test_writing_streams_shaded_characters_and_stop_ends_it(page, server):
    model = server[1][SLOW].model
    choose(page, SLOW)
    page.get_by_label("Prefix").fill("分开")
    page.get_by_label("range slider for Length").fill("1000")
    sync_api.expect(page.get_by_label("number input for Length")).to_have_value("1000")
    page.get_by_role("button", name="Write", exact=True).click()

    wait_until(lambda: written(page) >= 20, 15, "no text appeared")
    early = written(page)
    page.wait_for_timeout(600)
    assert written(page) > early, "the text should grow while it streams"
    assert page.locator("#lyric .prefix").inner_text() == "分开", "the prefix is shown, set apart"
    shades = page.locator("#lyric .c").evaluate_all("spans => spans.map(s => s.style.getPropertyValue('--sure'))")
    assert all(0 <= float(x) <= 1 for x in shades) and len(set(shades)) > 1, "each character shaded by its probability"

    page.get_by_role("button", name="Stop").click()
    page.wait_for_timeout(400)
    stopped, steps = written(page), model.steps
    page.wait_for_timeout(800)
    assert early < written(page) == stopped < 1000, "the text should stay, and stop growing, after Stop"
    assert model.steps == steps, "the server kept generating after Stop"
    page.screenshot(path=OUT / "app-desktop.png", full_page=True)


def test_the_form_shapes_the_lyric(page):
    choose(page, LSTM)
    page.get_by_label("Prefix").fill("分开")
    set_form(page, length="300", lines="4", acrostic="我你", rhyme="auto")
    write_and_wait(page)
    text = lyric(page)
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "分开" and len(lines) == 5, text  # the acrostic begins on a line of its own
    assert [line[0] for line in lines[1:3]] == ["我", "你"]
    assert page.locator("#lyric .forced").all_inner_texts() == ["我", "你"]
    page.screenshot(path=OUT / "app-form-desktop.png", full_page=True)


def test_hover_or_tap_shows_what_else_the_model_weighed(page):
    char = page.locator("#lyric .c:not(.forced)").nth(2)
    char.hover()
    tip = char.evaluate("c => getComputedStyle(c, '::after').content")
    assert char.inner_text() in tip and "%" in tip and "also likely" in tip, tip
    page.mouse.move(0, 0)
    char.focus()  # a tap focuses the character on a phone
    assert char.evaluate("c => getComputedStyle(c, '::after').content") == tip
    page.screenshot(path=OUT / "app-hover-desktop.png")


def test_copy_gives_the_plain_lyric(page):
    page.get_by_role("button", name="Copy").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == lyric(page) and copied.startswith("分开\n我") and "%" not in copied


def test_write_4_shows_candidates_and_one_click_continues_from_one(page):
    set_form(page, length="120", lines="2", acrostic="", rhyme="off")
    page.get_by_role("button", name="Write 4", exact=True).click()
    cards = page.locator(".card .cand")
    wait_until(lambda: cards.count() == 4, 20, "no candidates appeared")
    scores = [float(t.split("perplexity ")[1].split(" ")[0]) for t in cards.all_inner_texts()]
    assert scores == sorted(scores), "best (lowest perplexity) first"
    second = cards.nth(1).locator(".lyric").inner_text()
    assert second.startswith("分开") and second.count("\n") == 2

    page.get_by_role("button", name="Continue from #2").click()
    sync_api.expect(page.get_by_label("Prefix")).to_have_value(second)
    wait_until(lambda: page.locator("#lyric .prefix").inner_text() == second and written(page) > 0, 15,
               "no continuation of the chosen candidate")
    page.wait_for_timeout(1000)  # the continuation written, the page scrolled
    top = page.locator("#lyric").bounding_box()["y"]
    assert 0 <= top < 900 / 2, f"the lyric being continued is not in view (its top at {top:.0f} px)"
    page.screenshot(path=OUT / "app-candidates-desktop.png", full_page=True)


def test_enter_writes_and_repeated_clicks_do_no_harm(page):
    set_form(page, length="300", lines="0", acrostic="", rhyme="off")
    page.get_by_label("Prefix").fill("不分开")
    page.get_by_label("Prefix").press("Enter")
    wait_until(lambda: lyric(page).startswith("不分开") and written(page) == 300, 15, "Enter did not write")
    for _ in range(6):
        page.get_by_role("button", name="Write", exact=True).click()
    page.wait_for_timeout(1500)
    assert lyric(page).startswith("不分开") and written(page) == 300
    assert page.get_by_test_id("toast-body").filter(has_text="Error").count() == 0


def test_unknown_characters_are_pointed_out(page):
    page.get_by_label("Prefix").fill("分开😀")
    sync_api.expect(page.locator("#notice")).to_contain_text("read as <unk>")
    sync_api.expect(page.locator("#notice")).to_contain_text("“😀”")


def test_rhyme_choices_follow_the_model(page):
    choose(page, ENGLISH)
    page.get_by_label("Rhyme", exact=True).click()
    options = [text.removeprefix("✓").strip() for text in page.locator("#rhyme [role=option]").all_inner_texts()]
    assert options == ["off", "auto: as the last line"], "English rhymes are typed as words, not groups"
    page.keyboard.press("Escape")
    choose(page, LSTM)
    page.get_by_label("Rhyme", exact=True).click()
    assert "江阳 · 阳" in page.locator("#rhyme [role=option]").all_inner_texts()
    page.keyboard.press("Escape")


def song_form(page, line_lengths="", scheme="", keywords="") -> None:
    page.get_by_label("Line lengths (字数)").fill(line_lengths)
    page.get_by_label("Rhyme scheme").fill(scheme)
    page.get_by_label("Keywords").fill(keywords)


def lyric_lines(page, where: str = "#lyric .lyric") -> list[str]:
    """The lines a lyric shows."""
    return page.locator(where).inner_text().rstrip("\n").split("\n")


def assert_song(lines: list[str], keyword: str) -> None:
    assert [sung(line) for line in lines] == [7] * 4, lines
    assert broken_rhymes("\n".join(lines) + "\n", "AABB") == [], lines
    assert sum(line.count(keyword) for line in lines) >= 1, lines


def test_co_writing_a_pattern_a_scheme_and_keywords_then_rewriting_around_locked_lines(page, server):
    choose(page, LSTM)
    keyword = next(w for w in ["我们", "回忆", "你"] if not server[1][LSTM].model.vocab.unknown(w))
    page.get_by_label("Prefix").fill("")
    set_form(page, length="100", lines="0", acrostic="", rhyme="off")
    song_form(page, "7,7,7,7", "AABB", keyword)
    write_and_wait(page)
    written_lines = lyric_lines(page)
    assert_song(written_lines, keyword)
    locks = page.locator("#locks label")
    sync_api.expect(locks).to_have_count(4)
    sync_api.expect(page.locator("#from-next-line input")).not_to_be_checked()  # shown: the LSTM's has a next-line
    page.locator("#from-next-line input").check()  # model; a scheme asks for lines it cannot keep: it proposes none
    assert locks.nth(0).inner_text().startswith("1 · " + written_lines[0])
    locks.nth(0).click()
    locks.nth(2).click()

    page.get_by_role("button", name="Rewrite the others").click()
    wait_until(lambda: page.locator("#lyric .kept").count() == 2, 20, "no rewrite appeared")
    rewritten = lyric_lines(page)
    assert rewritten[0] == written_lines[0] and rewritten[2] == written_lines[2], "locked lines changed"
    assert rewritten != written_lines
    assert_song(rewritten, keyword)
    assert page.locator("#lyric .kept").all_inner_texts() == [written_lines[0], written_lines[2]]
    lock = page.locator("#lyric .kept").first.evaluate("k => getComputedStyle(k, '::before').backgroundImage")
    assert lock.startswith('url("data:image/svg+xml'), "a kept line shows its lock"
    sync_api.expect(page.locator("#locks input:checked")).to_have_count(2)
    page.screenshot(path=OUT / "app-cowrite-desktop.png", full_page=True)

    page.get_by_role("button", name="Rewrite 4").click()
    cards = page.locator("#rewrites .cand")
    wait_until(lambda: cards.count() == 4 and cards.nth(3).is_visible(), 30, "no rewrites appeared")
    second = cards.nth(1).locator(".lyric").inner_text().split("\n")
    assert second[0] == written_lines[0] and second[2] == written_lines[2]
    page.get_by_role("button", name="Use #2").click()
    wait_until(lambda: lyric_lines(page) == second, 10, "the chosen rewrite is not the lyric")
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#locks").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=OUT / "app-cowrite-phone.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "co-writing scrolls sideways on a phone"
    page.set_viewport_size({"width": 1280, "height": 900})
    song_form(page)
    page.get_by_label("Prefix").fill("分开")
    write_and_wait(page)  # a lyric written as it streams again, its characters shaded, for the tests after


def test_a_song_form_that_cannot_be_kept_says_which_field_and_the_lyric_stays(page):
    before = page.locator("#lyric .lyric").inner_html()
    song_form(page, "0,7")
    page.get_by_role("button", name="Write", exact=True).click()
    sync_api.expect(page.get_by_test_id("toast-body").filter(has_text="Line lengths must be")).to_have_count(1)
    song_form(page)
    assert page.locator("#lyric .lyric").inner_html() == before, "a refused request must not wipe the lyric"


def test_phone_width_and_nothing_from_the_internet(page, server):
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_label("Prefix").fill("分开")
    page.wait_for_timeout(500)
    page.screenshot(path=OUT / "app-phone.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    char = page.locator("#lyric .c:not(.forced)").first
    char.focus()  # what a tap does
    page.screenshot(path=OUT / "app-phone-tip.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the tip must not widen the page"
    hosts = {urlparse(url).netloc for url in page.requested if url.startswith("http")}
    assert hosts == {urlparse(server[0]).netloc}


def screenshots_at_both_widths(page, tab: str) -> None:
    """Screenshots of a tab on a laptop and on a phone, where nothing may scroll sideways; then back to Write."""
    page.screenshot(path=OUT / f"app-{tab}-desktop.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    page.screenshot(path=OUT / f"app-{tab}-phone.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, f"the {tab} tab scrolls sideways on a phone"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("tab", name="Write").click()


def test_the_score_tab_shades_plots_and_lists_the_surprises(page, server):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("tab", name="Score").click()
    lyric = "窗外的麻雀\n在电线杆上多嘴"
    page.get_by_label("A lyric to score").fill(lyric)
    page.get_by_role("button", name="Score", exact=True).click()
    chars = page.locator("#scored .c")
    wait_until(lambda: chars.count() == len(lyric) - 1, 20, "the text was not shaded")  # the line break is a break
    rows = page.locator("#score-table tbody tr")
    assert rows.count() == 3, "one row per model"
    cells = [rows.nth(k).locator("td").all_inner_texts() for k in range(3)]
    assert [float(row[1]) for row in cells] == sorted(float(row[1]) for row in cells), "best first"
    assert cells[-1][0] == ENGLISH and cells[0][3].endswith("x"), cells
    for name, _, bigram, _ in cells:  # each model's bigram, counted on its training text, scores the pasted text
        expected = server[1][name].bigram.score(lyric).perplexity  # shown to 0.1, to 1 from 1,000 on (a phone's width)
        assert float(bigram) == pytest.approx(expected, abs=0.05 if expected < 1000 else 0.5), name
    assert page.locator("#surprise-plot polyline").count() == 1
    assert page.locator("#surprise-plot line.line").count() == 1, "the second line's start is marked"
    assert page.locator("#surprising tbody tr").count() == 10
    chars.nth(3).hover()
    tip = chars.nth(3).evaluate("c => getComputedStyle(c, '::after').content")
    assert "expected" in tip and "rank" in tip
    screenshots_at_both_widths(page, "score")


def test_the_compare_tab_streams_every_model_side_by_side(page, server):
    page.get_by_role("tab", name="Compare").click()
    page.get_by_label("Start").fill("分开")
    page.get_by_label("range slider for Characters each").fill("1000")
    page.get_by_label("number input for Line limit").fill("0")
    page.get_by_label("number input for Line limit").press("Enter")
    page.get_by_role("button", name="Compare every model").click()
    page.evaluate(WATCH_CARDS)
    cards = page.locator(".compare-card .cand")
    # Each model writes at its own pace; its mean log-probability shows once it has finished.
    wait_until(lambda: all("mean log-probability" in t for t in cards.all_inner_texts()), 30, "not every model wrote")
    # Every model wrote its 1,000 characters after the prefix: its text and its line breaks (innerText would trim a
    # last line break or space).
    written = cards.locator(".lyric").evaluate_all(
        "ls => ls.map(l => l.textContent.length + l.querySelectorAll('br').length)")
    assert written == [len("分开") + 1000] * 3, written
    seen = page.evaluate("window.cardLengths")
    # Each model writes at its own pace through the engine (the slow one alone, the others in their loops), side by
    # side: two updates midway at least, with a model part-written.
    midway = [lengths for lengths in seen if any(len("分开") < n < 1000 for n in lengths)]
    assert len({tuple(m) for m in midway}) >= 2, f"the models did not stream: {seen}"
    for k in range(len(seen[0])):
        assert [s[k] for s in seen] == sorted(s[k] for s in seen), "a stream only grows"
    texts = {name: cards.filter(has_text=name).first.locator(".lyric").inner_text() for name in (LSTM, SLOW, ENGLISH)}
    assert texts[LSTM] == texts[SLOW] != texts[ENGLISH], "one seed and the same options for every model"
    assert all(text.startswith("分开") for text in texts.values())
    assert all("mean log-probability" in t for t in cards.all_inner_texts())
    screenshots_at_both_widths(page, "compare")


def test_the_next_line_tab_writes_a_song_line_by_line_with_its_attention(page):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("tab", name="Write").click()
    page.get_by_label("Prefix").fill("分开")
    page.get_by_role("button", name="Write", exact=True).click()
    lyric = page.locator("#lyric .lyric")
    wait_until(lambda: len(lyric.inner_text()) > 30, 20, "the Write tab did not write")
    page.get_by_role("button", name="Stop").first.click()
    page.get_by_role("tab", name="Next line").click()
    page.get_by_role("button", name="Take the Write tab's last line").click()
    box = page.locator("#next-line-input textarea")
    last = [line for line in lyric.inner_text().split("\n") if line.strip()][-1]
    wait_until(lambda: box.input_value() == last, 10, "the Write tab's last line was not taken")

    picker = page.locator("#next-line-model input")
    picker.click()  # the one fused with the LSTM, as `make models` ships it
    page.get_by_role("option", name="jaychou-next-line-fused", exact=True).click()
    sync_api.expect(picker).to_have_value("jaychou-next-line-fused")
    box.fill("窗外的麻雀")
    page.locator("#next-line-seed").get_by_role("textbox").fill("2")
    page.get_by_role("button", name="Write the next line").click()
    lines = page.locator("#song .song > div")
    wait_until(lambda: lines.count() == 2 and page.locator("#attention td").count() > 0, 20, "no line, no heatmap")
    page.wait_for_timeout(500)  # the last update: the whole line
    written = lines.nth(1).inner_text()
    assert lines.nth(0).inner_text() == "窗外的麻雀"
    header = page.locator("#attention tr").first.locator("th").all_inner_texts()
    assert header[1:] == list("窗外的麻雀"), "one column per character of the line answered"
    assert page.locator("#attention tr").count() == 1 + len(written), "one row per written character"
    shades = page.locator("#attention tr").nth(1).locator("td").evaluate_all("cells => cells.map(c => c.style.cssText)")
    later = page.locator("#attention tr").nth(len(written)).locator("td").evaluate_all(
        "cells => cells.map(c => c.style.cssText)")
    assert len(written) == 1 or shades != later, "its cache looks somewhere else for another character"
    page.get_by_role("button", name="Continue").click()
    wait_until(lambda: lines.count() == 3, 20, "Continue did not add a line")
    page.wait_for_timeout(500)
    header = page.locator("#attention tr").first.locator("th").all_inner_texts()
    assert "".join(header[1:]) == "".join(map(visible, written)), "Continue answers the line just written"
    screenshots_at_both_widths(page, "next-line")
