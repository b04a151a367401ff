"""Models still training when the page opens (`make demo` trains them in the background and says so with
CHARRNN_TRAINING=1): each is loaded into the app's lists when its folder is written, the page's model lists grow
with it, and a banner shows the training."""
import json
import threading
import time
from pathlib import Path

import gradio as gr

from training.progress import progress_file

from engine.catalog import load_models
from engine.settings import Settings

from .common import Variant, log

CHECK_EVERY = 2.0  # seconds


def in_training(source: str) -> bool:
    """A local folder whose weights are not written yet."""
    return Path(source).is_absolute() and not (Path(source) / "model.safetensors").is_file()


class Arrivals:
    """The sources still training; once started, loads each into `variants` or `next_lines` when it is ready."""

    def __init__(self, settings: Settings):
        self.settings, self.sources, self.variants, self.next_lines = settings, settings.sources, {}, {}
        self.coming = [s for s in self.sources if in_training(s)] if settings.training else []

    def start(self, variants: dict[str, Variant], next_lines: dict[str, Variant]) -> None:
        self.variants, self.next_lines = variants, next_lines
        if self.coming:
            threading.Thread(target=self.watch, name="arrivals", daemon=True).start()

    def watch(self) -> None:
        while self.coming:
            time.sleep(CHECK_EVERY)
            for source in [s for s in self.coming if not in_training(s)]:
                variants, next_lines = load_models([source], self.settings, self.sources)
                self.variants.update(variants)
                self.next_lines.update(next_lines)
                self.coming.remove(source)
                log.info("%s arrived", source)

    def status(self) -> str:
        """The banner: each model still training, and how far it is."""
        if not self.coming:
            return ""
        lines = [f"**Still training** (`make demo`): each model joins the lists when it is ready. "
                 f"{len(self.variants) + len(self.next_lines)} ready."]
        for source in self.coming:
            lines.append(f"- {Path(source).name}: {progress(source)}")
        return "\n".join(lines)


def progress(source: str) -> str:
    try:
        p = json.loads(progress_file(source).read_text())
    except (OSError, ValueError):
        return "waiting for its turn"
    budget = f" of {p['budget_seconds']:.0f}" if p.get("budget_seconds") else ""
    val = f", held-out perplexity {p['val_ppl']:.1f}" if p.get("val_ppl") else ""
    return f"epoch {p['epoch']} done, {p['seconds']:.0f}{budget} s{val}"


def build(arrivals: Arrivals, pickers: list[tuple[str, gr.Dropdown]], compare_cards: list, refresh_cards) -> None:
    """The banner, and a timer that brings each arrival into the page's lists (each picker lists "variants" or
    "next_lines")."""
    banner = gr.Markdown(arrivals.status(), elem_id="training")
    timer = gr.Timer(CHECK_EVERY, active=bool(arrivals.coming))
    seen = gr.State(len(arrivals.variants) + len(arrivals.next_lines))  # the lists as built; a later page catches up
    lists = {"variants": arrivals.variants, "next_lines": arrivals.next_lines}

    def tick(count, *chosen):
        now = len(arrivals.variants) + len(arrivals.next_lines)
        if now == count:
            return arrivals.status(), gr.Timer(active=bool(arrivals.coming)), count, *[gr.skip()] * (
                len(pickers) + len(compare_cards))
        updates = [gr.Dropdown(choices=list(lists[kind]), value=value or next(iter(lists[kind]), None))
                   for (kind, _), value in zip(pickers, chosen)]
        return arrivals.status(), gr.Timer(active=bool(arrivals.coming)), now, *updates, *refresh_cards()

    timer.tick(tick, [seen, *[p for _, p in pickers]], [banner, timer, seen, *[p for _, p in pickers], *compare_cards],
               queue=False, show_progress="hidden", api_visibility="private")
