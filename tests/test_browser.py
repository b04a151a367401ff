"""The page in a real browser (Debian's Chromium through Playwright): choose, type, slide, generate, watch, stop.

Needs /usr/bin/chromium and fonts-noto-cjk: `make browser`. Screenshots go to test-output/.
"""
from pathlib import Path
from urllib.parse import urlparse

import pytest

import app
from test_app import LSTM, CountingModel, wait_until

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
OUT = Path(__file__).resolve().parent.parent / "test-output"
SLOW = "Jay Chou lyrics · LSTM (slowed down)"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium: run `make browser`")


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    variants = app.load_variants([str(tiny_model_dir)], app.DEVICE)
    variants[SLOW] = app.Variant("test", CountingModel(variants[LSTM].model, delay=0.005), {})
    demo = app.build_demo(variants)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield url, variants[SLOW].model
    demo.close()


@pytest.fixture(scope="module")
def page(server):
    OUT.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        page.goto(server[0])
        page.locator("#output textarea").wait_for()
        yield page
        browser.close()


def output(page) -> str:
    return page.locator("#output textarea").input_value()


def choose(page, variant: str) -> None:
    page.get_by_label("Model").click()
    page.get_by_role("option", name=variant, exact=True).click()
    sync_api.expect(page.get_by_label("Model")).to_have_value(variant)


def test_generate_streams_and_stop_ends_it(page, server):
    model = server[1]
    choose(page, SLOW)
    page.get_by_label("Prefix").fill("分开")
    page.get_by_label("range slider for Length").fill("1000")
    sync_api.expect(page.get_by_label("number input for Length")).to_have_value("1000")
    page.get_by_role("button", name="Generate").click()

    wait_until(lambda: len(output(page)) >= 20, 15, "no text appeared")
    early = len(output(page))
    page.wait_for_timeout(600)
    assert len(output(page)) > early, "the text should grow while it streams"

    page.get_by_role("button", name="Stop").click()
    page.wait_for_timeout(400)
    stopped, steps = len(output(page)), model.steps
    page.wait_for_timeout(800)
    assert early < len(output(page)) == stopped < 1000, "the text should stay, and stop growing, after Stop"
    assert model.steps == steps, "the server kept generating after Stop"
    page.screenshot(path=OUT / "app-desktop.png", full_page=True)


def test_enter_generates_and_repeated_clicks_do_no_harm(page):
    choose(page, LSTM)
    page.get_by_label("range slider for Length").fill("300")
    page.get_by_label("Prefix").fill("不分开")
    page.get_by_label("Prefix").press("Enter")
    wait_until(lambda: len(output(page)) == 300, 15, "Enter did not generate 300 characters")

    for _ in range(6):
        page.get_by_role("button", name="Generate").click()
    page.wait_for_timeout(1500)
    assert len(output(page)) == 300
    assert page.get_by_test_id("toast-body").filter(has_text="Error").count() == 0


def test_unknown_characters_are_pointed_out(page):
    page.get_by_label("Prefix").fill("分开😀")
    sync_api.expect(page.locator("#notice")).to_contain_text("read as <unk>")
    sync_api.expect(page.locator("#notice")).to_contain_text("“😀”")


def test_phone_width_and_nothing_from_the_internet(page, server):
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_label("Prefix").fill("分开")
    page.wait_for_timeout(500)
    page.screenshot(path=OUT / "app-phone.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    hosts = {urlparse(url).netloc for url in page.requested if url.startswith("http")}
    assert hosts == {urlparse(server[0]).netloc}
