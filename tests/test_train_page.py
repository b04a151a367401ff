"""The Train tab and /train for real: a browser pastes a text made here, watches the curve and the samples, writes
with the new model in Write, downloads the zip and loads it with CharRNN.from_pretrained, then fine-tunes a shipped
model the same way; gradio_client trains through /train, in its own session only. Screenshots go to test-output/.

Needs /usr/bin/chromium and fonts-noto-cjk (`make browser`) for the browser part.
"""
import random
import re
import zipfile
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

import app
from charrnn import CharRNN
from engine.catalog import load_models
from engine.settings import Settings
from engine.training import Trained
from test_app import LSTM, finish, wait_until
from test_browser import CHROMIUM, FLAGS, OUT
from test_trainings import alive
from ui.train import CURVES, the_text

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.server
DEFAULTS = ("from scratch", "lstm", "small", 0.25, "mine")  # /train is unlisted: gradio_client fills in no default
WORDS = "月光 窗外 雨 风 你 我 的 心 在 等 一 句 话 夜 街 灯 想 念 走 过 回 忆 天 空 海 边 花 开 梦".split()


def made_text(chars: int = 20_000, seed: int = 0) -> str:
    """Lyrics-like lines of a small vocabulary with a rule or two to learn, made here (no corpus text)."""
    rng, lines = random.Random(seed), []
    while sum(map(len, lines)) < chars:
        line = "".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))
        lines.append(line + ("的梦" if len(lines) % 2 else "在等你"))
    return "\n".join(lines)[:chars]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    variants = load_models([str(tiny_model_dir)], Settings())[0]
    trained = Trained(tmp_path_factory.mktemp("trained"), slots=1)
    demo = app.build_demo(variants, {}, trained=trained)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield url, trained
    demo.close()


def test_the_api_trains_in_its_own_session(server):
    url, _ = server
    client, stranger = Client(url, verbose=False), Client(url, verbose=False)
    job = finish(client.submit(made_text(), "from scratch", "gru", "small", 0.25, "api model", api_name="/train"),
                 deadline=120)
    events = job.outputs()
    points = [e for e in events if e["event"] == "point"]
    assert events[0]["event"] in ("waiting", "start") and len(points) >= 3 and events[-1]["event"] == "done"
    assert points[-1]["seconds"] <= 0.25 * 60 + 6 and all(isinstance(p["sample"], str) for p in points)
    name = events[-1]["model"]
    assert name == "api model"
    written = client.predict(name, "月光", 30, 0.8, 0, 1.0, 3, api_name="/generate")
    assert len(written) == 30
    assert name in [m["name"] for m in client.predict(api_name="/models")]
    assert name not in [m["name"] for m in stranger.predict(api_name="/models")]
    with pytest.raises(Exception, match="Unknown model"):
        stranger.predict(name, "月光", 30, api_name="/generate")
    archive = httpx.get(url.rstrip("/") + events[-1]["download"], timeout=30)
    assert archive.status_code == 200 and archive.content[:2] == b"PK"


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("短" * 100, "2,000"), ("\x01\x02" * 2000, "control characters"), (None, "empty")])
def test_bad_texts_are_refused_with_a_sentence(server, text, message):
    client = Client(server[0], verbose=False)
    job = client.submit(text, *DEFAULTS, api_name="/train")
    with pytest.raises(Exception, match=message):
        finish(job, deadline=30).result()


def test_bad_options_are_refused_with_a_sentence(server):
    client = Client(server[0], verbose=False)
    for changed, message in [({0: "no such model"}, "Unknown model"), ({1: "cnn"}, "Cell"), ({2: "huge"}, "Size"),
                             ({3: 60}, "Minutes"), ({3: "two"}, "Minutes"), ({4: "x" * 61}, "Name")]:
        args = [changed.get(k, value) for k, value in enumerate(DEFAULTS)]
        with pytest.raises(Exception, match=message):
            finish(client.submit(made_text(), *args, api_name="/train"), deadline=30).result()


def test_uploads_are_checked_as_untrusted(tmp_path):
    for content, message in [(b"\x89PNG\x00\x00" + bytes(3000), "NUL bytes"),
                             ("周杰伦的歌词，很长很长。".encode("gbk") * 300, "not UTF-8"), (b"", "empty"),
                             ("字".encode() * 500, "2,000")]:
        path = tmp_path / "upload.txt"
        path.write_bytes(content)
        with pytest.raises(Exception, match=message):
            the_text("", str(path), "")
    path.write_text(made_text(5000), encoding="utf-8")
    assert the_text("ignored", str(path), "") == made_text(5000)


# Whether the plot has drawn the held-out curve: pixels of its colour on the plot's canvas (or an SVG path of it).
HELD_OUT_DRAWN = """(el) => {
    if (el.querySelector('path[stroke="%s"]')) return true;
    const canvas = el.querySelector('canvas');
    if (!canvas || !canvas.width) return false;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < d.length; i += 4)
        if (Math.abs(d[i] - %d) < 24 && Math.abs(d[i + 1] - %d) < 24 && Math.abs(d[i + 2] - %d) < 24) return true;
    return false;
}""" % (CURVES["held-out"], *bytes.fromhex(CURVES["held-out"][1:]))


def held_out_drawn(page) -> None:
    page.wait_for_function(HELD_OUT_DRAWN, arg=page.locator("#train-curve").element_handle(), timeout=10_000)


def watch_training(page, shots: str) -> tuple[list[str], Path]:
    """Start, see the curve grow over 3 points and the samples change, wait for the end; returns the samples seen
    and the downloaded zip."""
    page.get_by_role("button", name="Start training").click()
    sync_api.expect(page.get_by_role("button", name="Download")).to_be_hidden(timeout=10_000)  # the last run's
    samples = page.locator("#train-samples textarea")
    sync_api.expect(page.locator("#train-status progress")).to_be_visible(timeout=60_000)
    heads = r"/^\d+ s · held-out/gm"  # each sample's head: its time and held-out perplexity
    try:
        for n in (1, 2, 3):  # a new sample at each point, at least every 10 s
            page.wait_for_function(f"([el, n]) => (el.value.match({heads}) || []).length >= n",
                                   arg=[samples.element_handle(), n], timeout=15_000)
    except Exception:
        page.screenshot(path=str(OUT / f"{shots}-failed.png"), full_page=True)
        raise
    seen = re.split(r"\n\n(?=\d+ s · held-out)", samples.input_value())
    held_out_drawn(page)
    page.screenshot(path=str(OUT / f"{shots}-training.png"), full_page=True)
    download = page.get_by_role("button", name="Download")
    sync_api.expect(download).to_be_visible(timeout=120_000)
    held_out_drawn(page)
    page.screenshot(path=str(OUT / f"{shots}-done.png"), full_page=True)
    with page.expect_download() as caught:
        download.click()
    path = OUT / caught.value.suggested_filename
    caught.value.save_as(path)
    return seen, path


def loaded(archive: Path, into: Path) -> CharRNN:
    with zipfile.ZipFile(archive) as z:
        z.extractall(into)
    [folder] = [p for p in into.iterdir() if p.is_dir()]
    return CharRNN.from_pretrained(folder)


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium: run `make browser`")
def test_a_person_trains_writes_downloads_and_fine_tunes(server, tmp_path, tiny_model_dir):
    url, trained = server
    OUT.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.get_by_role("tab", name="Train").click()
        page.get_by_label("Text to learn").fill(made_text())
        sync_api.expect(page.locator("#sizes")).to_contain_text("this text's")
        page.get_by_label("range slider for Minutes").fill("0.5")
        samples, archive = watch_training(page, "train")
        assert len(samples) >= 3 and len(set(samples)) >= 3  # each point's sample differs: it is learning
        status = page.locator("#train-status").inner_text()
        assert "my-model" in status and "held-out perplexity" in status and archive.name == "my-model.zip"
        model = loaded(archive, tmp_path / "scratch")
        assert len(model.generate("月光", 12, seed=1)) == 12

        page.get_by_role("tab", name="Write").click()  # the new model is in this page's Write list
        page.get_by_label("Model").click()
        page.get_by_role("option", name="my-model", exact=True).click()
        page.get_by_label("Prefix").fill("月光")
        page.get_by_role("button", name="Write", exact=True).click()
        page.wait_for_function("() => document.querySelectorAll('#lyric .lyric .c').length >= 20", timeout=30_000)

        page.get_by_role("tab", name="Train").click()  # fine-tune the shipped model on the same text
        page.get_by_label("Start from").click()
        page.get_by_role("option", name=LSTM, exact=True).click()
        samples, archive = watch_training(page, "fine-tune")
        tuned = loaded(archive, tmp_path / "tuned")
        shipped = CharRNN.from_pretrained(tiny_model_dir)
        assert tuned.rnn.hidden_size == shipped.rnn.hidden_size
        assert set(shipped.vocab.chars) <= set(tuned.vocab.chars)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(url)
        phone.get_by_role("button", name="More tabs").click()  # a phone shows two tabs and a menu of the rest
        phone.get_by_role("button", name="Train", exact=True).click()
        phone.get_by_label("Text to learn").fill(made_text(5000, seed=1))
        phone.get_by_label("range slider for Minutes").fill("0.25")
        watch_training(phone, "train-phone")
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the Train tab is {width} px wide on a 390 px phone"
        browser.close()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium: run `make browser`")
def test_closing_the_tab_cancels_its_training(server):
    url, trained = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.get_by_role("tab", name="Train").click()
        page.get_by_label("Text to learn").fill(made_text(seed=2))
        page.get_by_role("button", name="Start training").click()
        sync_api.expect(page.locator("#train-status")).to_contain_text("held-out perplexity", timeout=60_000)
        [training] = trained.running
        pid, folder = training.process.pid, training.folder
        page.close()
        wait_until(lambda: not alive(pid), 30, "the training outlived its tab")
        wait_until(lambda: trained.running == [] and not folder.exists(), 10, "its slot or folder was kept")
        browser.close()
