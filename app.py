"""The charrnn demo: choose a model, give a prefix and a form, watch the lyric stream in (locally or as a HF Space).

    python app.py                      # the variants in models.txt (make models trains them)
    CHARRNN_MODELS=user/charrnn-jaychou-lstm python app.py    # or Hub repos
"""
import atexit
import gc
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio summarises its last 10,000 requests (a pandas groupby) for its monitoring page after every request, which
# costs more CPU the longer the server runs (docs/results.md). Every 100th request is often enough.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")
# ... over the last 10,000 by default: once a server has been busy a while, each summary reads all of them, on the
# thread that answers requests. The last 1,000 requests say as much.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

from engine import memory  # noqa: E402

memory.bound_primitive_cache()  # before anything runs an LSTM: this process's and the decoding processes'

import spaces  # noqa: E402,F401  (before torch: on a ZeroGPU Space it patches torch's CUDA start-up)
import gradio as gr  # noqa: E402
from spaces.config import Config as SpacesConfig  # noqa: E402

from charrnn import limits  # noqa: E402
from engine.catalog import Variant, load_models  # noqa: E402
from engine.settings import Settings, SettingsError  # noqa: E402
from engine.training import Trained  # noqa: E402
from ui import arrivals, common, compare, generate, lyric, next_line, score, server, train  # noqa: E402
from ui.common import NO_MODELS, log, writing  # noqa: E402

MODELS_FILE = Path(__file__).with_name("models.txt")

QUEUE_SIZE = 64
# Where requests decode in gradio's own threads (CHARRNN_DECODING=per-request), they and its event loop take turns at
# the interpreter: handing it over more often than every 5 ms serves many listeners more characters per second
# (bench/app_latency.py). The decoding loops run in a process of their own and do not mind.
SWITCH_INTERVAL = 0.0002
SPARE_THREADS = 40  # beyond one for each stream being written, which holds a worker thread while it waits
THEME = gr.themes.Soft(primary_hue="rose", secondary_hue="slate")
CSS = """
.gradio-container { max-width: 1100px !important; margin: auto; }
#notice:empty { display: none; }
[id^="examples-"] table { table-layout: fixed; width: 100%; overflow-wrap: anywhere; }  /* never wider than a phone */
[id^="examples-"] th, [id^="examples-"] th * { white-space: normal !important; }  /* a long header wraps in its column */
@media (max-width: 480px) { button[role="tab"] { padding-left: .4em !important; padding-right: .4em !important; } }
""" + lyric.CSS + next_line.CSS


def build_demo(variants: dict[str, Variant], next_lines: dict[str, Variant] | None = None,
               coming: arrivals.Arrivals | None = None, decoding: str = "loop", trained: Trained | None = None
               ) -> gr.Blocks:
    """The page; `coming` brings the models still training into it as they arrive; decoding as the models were
    loaded with (engine.settings); `trained`, the visitors' own trainings, adds the Train tab."""
    next_lines = {} if next_lines is None else next_lines
    common.TRAINED[:] = [trained] if trained else []
    with gr.Blocks(title="charrnn · character-level lyrics writer") as demo:
        gr.Markdown("# charrnn\nCharacter-level recurrent networks that write Jay Chou style lyrics (and Victorian "
                    "prose), one character at a time. Choose a model, give it a start and a form, and watch it write.")
        if not variants and not (coming and coming.coming):
            gr.Markdown(NO_MODELS)
        banner = gr.Column()
        with gr.Tab("Write"):
            writer = generate.build(variants, decoding, next_lines)
        with gr.Tab("Score"):
            shader = score.build(variants)
        with gr.Tab("Compare"):
            own = limits.TRAINED_PER_SESSION if trained else 0
            cards = compare.build(variants, slots=len(variants) + len(coming.coming if coming else []) + own)
        with gr.Tab("Next line"):
            next_writer = next_line.build(next_lines)
        if trained:
            with gr.Tab("Train"):
                train.build(variants, trained, writer, shader)

            def closed(request: gr.Request) -> None:  # the tab closed: its trainings end, its models go later
                trained.end(request.session_hash)
            demo.unload(closed)
        if coming:
            with banner:
                arrivals.build(coming, [("variants", writer), ("variants", shader), ("next_lines", next_writer)],
                               cards, lambda: compare.refresh(variants, cards))
    return demo.queue(max_size=QUEUE_SIZE)


def launch(demo: gr.Blocks, decoding: str = "loop", **options):
    """Launch with the page's look (Gradio 6 takes theme and css here), its tools served over MCP too (at
    /gradio_api/mcp/), the server's guard and session sweeper (ui/server.py), and the trained models' zips
    downloadable by the path /train gives (each under its session's secret name); options go to demo.launch."""
    trained = [t.zips for t in common.TRAINED]
    return demo.launch(theme=THEME, css=CSS, mcp_server=True, allowed_paths=trained, max_file_size=limits.UPLOAD_BYTES,
                       max_threads=writing(decoding)["concurrency_limit"] + SPARE_THREADS,
                       state_session_capacity=server.STATE_SESSIONS, app_kwargs=server.app_kwargs(demo), **options)


def own_folder() -> Path:
    """This server's folder for trained models: the temp folder's charrnn-trained/<pid>. Those of servers no longer
    running are deleted first: a server stopped by a signal cannot delete its own."""
    parent = Path(tempfile.gettempdir()) / "charrnn-trained"
    parent.mkdir(exist_ok=True)
    for folder in parent.iterdir():
        if not (folder.name.isdigit() and running(int(folder.name))):
            shutil.rmtree(folder, ignore_errors=True)
    folder = parent / str(os.getpid())
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def main() -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    sys.setswitchinterval(SWITCH_INTERVAL)
    memory.return_freed_buffers()
    log.setLevel(logging.INFO)
    try:
        settings = Settings.from_environ(MODELS_FILE)
    except SettingsError as e:
        sys.exit(str(e))
    coming = arrivals.Arrivals(settings)
    sources = settings.sources
    variants, next_lines = load_models([s for s in sources if s not in coming.coming], settings, sources)
    coming.start(variants, next_lines)
    if not variants and not coming.coming:
        log.warning(NO_MODELS.replace("**", "").replace("`", ""))
    try:
        trained = Trained(settings.trained_root or own_folder(), settings.trainings, settings.device.type,
                          SpacesConfig.zero_gpu)
    except ValueError as e:  # a trained-models folder that is not ours
        sys.exit(str(e))
    demo = build_demo(variants, next_lines, coming, settings.decoding, trained)
    # What is loaded by now lives as long as the server: out of the collector's sight, a full collection no longer
    # walks it: such walks stalled every stream at once (bench/app_latency.py, docs/results.md).
    gc.freeze()
    launch(demo, settings.decoding)


if __name__ == "__main__":
    main()
