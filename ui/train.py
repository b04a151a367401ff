"""The Train tab: a text (pasted, uploaded or bundled), a start (from scratch, or a trained model to fine-tune), a time
budget; then the curve of training and held-out perplexity against the text's unigram and bigram, a sample at each
point, and the model in this session's lists, as a zip, and on the Hub. Also the /train endpoint."""
import functools
import html
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import httpx
import pandas as pd
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError

from charrnn import CELLS, CharRNN, ModelFileError, limits
from charrnn.names import CELL_NAMES
from engine.training import Refused, Trained, parameters_of
from hub_card.push import model_commit
from hub_card.upload import HubCardError, check_repo_id
from hub_card.wheel import build_wheel
from training.data import CorpusError, training_text
from training.train import DATA_DIR, SIZES, TrainConfig

from .common import Variant, documented, models_for, number, refusal, refused, string

try:
    import httpx2  # huggingface_hub 2's HTTP client
except ImportError:
    httpx2 = httpx  # huggingface_hub 1's
# The Hub out of reach: requests' errors (huggingface_hub 0.x) and the offline mode's are OSErrors, httpx's are not.
UNREACHABLE = (OSError, httpx.TransportError, httpx2.TransportError)

SCRATCH = "from scratch"
SAMPLE_LENGTH = 80
EVAL_SECONDS = 5.0  # a point of the curve at least this often (and at the end of every epoch)
MOST_HELD_OUT = 50_000  # characters: a tenth of the text is held out, but no more than this, so each point is quick
SAMPLES_SHOWN = 4
TYPICAL_VOCABULARY = 3000  # the sizes' parameters before a text is given: about a lyrics corpus's characters
BUNDLED = {"Jay Chou lyrics": "jaychou_lyrics.txt", "The Time Machine": "timemachine.txt"}
# Short names: the legend fits a phone's width in one row.
CURVES = {"train": "#3b6ea5", "held-out": "#e8590c", "unigram": "#adb5bd", "bigram": "#2b8a3e"}


def bundled() -> dict[str, Path]:
    """The corpora beside the checkout (none on a Space: their text is not shipped)."""
    return {label: DATA_DIR / name for label, name in BUNDLED.items() if (DATA_DIR / name).is_file()}


def default_minutes(trained: Trained) -> float:
    """About two minutes on a CPU, less where a GPU serves."""
    return 1.0 if trained.zero_gpu or trained.device == "cuda" else 2.0


def most_minutes(trained: Trained) -> float:
    return limits.ZERO_GPU_MINUTES if trained.zero_gpu else limits.TRAINING_MINUTES.high


def the_text(pasted, uploaded, corpus) -> str:
    """The text to learn, from the first source given: an uploaded file, a bundled corpus, or the pasted text; each
    checked as untrusted input (training.data.training_text)."""
    try:
        if uploaded:  # gradio took at most limits.UPLOAD_BYTES of it; training_text checks the rest
            return training_text(Path(uploaded).read_bytes(), "the file")
        if corpus:
            if corpus not in bundled():
                raise refusal(f"There is no bundled corpus {corpus!r} here.")
            return training_text(bundled()[corpus].read_bytes(), corpus)
        pasted = string("Text", pasted, limits.PASTED_TRAINING_TEXT)
        return training_text(pasted.encode("utf-8"), "the text")
    except CorpusError as e:
        raise refused(e) from None


def sample_prefix(text: str) -> str:
    """The start the samples continue: the first two characters of the text's first line with any."""
    return next((line.strip()[:2] for line in text.splitlines() if line.strip()), "")


def config_for(text: str, start: Variant | None, cell: str, size: str, minutes: float, lr: float, batch_size: int,
               num_steps: int, dropout: float, seed: int, most: float = limits.TRAINING_MINUTES.high) -> TrainConfig:
    """The training the page asks for, or a clear refusal; most: the longest budget here."""
    if cell not in CELLS:
        raise refusal(f"Cell must be one of {', '.join(CELLS)}, got {cell!r}.")
    if size not in SIZES:
        raise refusal(f"Size must be one of {', '.join(SIZES)}, got {size!r}.")
    return TrainConfig(
        cell=cell, **SIZES[size], init_from=start.source if start else None, lexicon=None,
        max_minutes=number("Minutes", minutes, limits.Range(limits.TRAINING_MINUTES.low, most)),
        eval_seconds=EVAL_SECONDS,
        val_fraction=min(0.1, MOST_HELD_OUT / len(text)), lr=number("Learning rate", lr, limits.LEARNING_RATE),
        batch_size=number("Batch size", batch_size, limits.BATCH_SIZE, whole=True),
        num_steps=number("Sequence length", num_steps, limits.SEQUENCE_LENGTH, whole=True),
        dropout=number("Dropout", dropout, limits.DROPOUT), seed=number("Seed", seed, limits.SEED, whole=True),
        epochs=10_000, patience=8, sample_prefixes=[sample_prefix(text)], sample_length=SAMPLE_LENGTH)


def sizes_note(text: str, cell: str) -> str:
    """Each size's parameter count for this text's characters."""
    chars = len(set(text)) if text else TYPICAL_VOCABULARY
    counts = [f"{size} {parameters(chars, cell if cell in CELLS else 'lstm', size) / 1e6:.2f} M" for size in SIZES]
    whose = f"this text's {chars:,} characters" if text else f"a vocabulary of {TYPICAL_VOCABULARY:,} characters"
    return f"Parameters for {whose}: {' · '.join(counts)}."


@functools.lru_cache(maxsize=1024)
def parameters(chars: int, cell: str, size: str) -> int:
    """A model's parameter count, counted on torch's meta device (no weight is made)."""
    vocab = {"chars": [chr(0x4E00 + i) for i in range(chars)]}
    return parameters_of(dict(vocab=vocab, cell=cell, head_size=TrainConfig.head_size, **SIZES[size]))


class Run:
    """What the page shows of one training as its events come: the status line, the curve, the samples."""

    def __init__(self):
        self.start, self.points, self.samples, self.state = {}, [], [], "Waiting for a slot…"

    def take(self, event: dict) -> None:
        kind = event["event"]
        if kind == "waiting":
            self.state = (f"Waiting: {event['place'] - 1} training(s) ahead of this one. Leave the line with Stop."
                          if event["place"] > 1 else "Starting…")
        elif kind == "start":
            self.start = event
            grown = f", {event['new_characters']:,} new characters added" if event["new_characters"] else ""
            self.state = (f"Training {event['params'] / 1e6:.2f} M parameters on {event['train_chars']:,} characters "
                          f"({event['vocab_size']:,} in its vocabulary{grown}); {event['val_chars']:,} held out. "
                          f"On the {'GPU' if event['device'].startswith('cuda') else 'CPU'}.")
        elif kind == "point":
            self.points.append(event)
            sample = next(iter(event["samples"].items()), ("", ""))
            self.samples.insert(0, f"{event['seconds']:.0f} s · held-out {event['val_ppl']:.1f}:  {''.join(sample)}")
            del self.samples[SAMPLES_SHOWN:]
        elif kind == "saving":
            self.state = "Saving the best weights, mixing in the text's bigram…"
        elif kind == "done":
            self.state = f"Done: {event['model']} is in this session's model lists (Write, Score, Compare). " \
                         "Download it, or push it to the Hub below."

    def status(self) -> str:
        budget = self.start.get("budget_seconds") or 0
        seconds = self.points[-1]["seconds"] if self.points else 0.0
        bar = f'<progress max="{budget:.0f}" value="{min(seconds, budget):.0f}"></progress> ' if budget else ""
        if not self.points:
            return f"{bar}{html.escape(self.state)}"
        p, best = self.points[-1], min(q["val_ppl"] for q in self.points)
        bigram = self.start.get("bigram_ppl")
        against = f" (the text's bigram: {bigram:.1f})" if bigram else ""
        speed = p["chars"] / max(p["seconds"], 1e-9)
        return (f"{bar}{seconds:.0f} of {budget:.0f} s · epoch {p['epoch']:.2f} · {speed:,.0f} "
                f"characters/s · held-out perplexity <b>{p['val_ppl']:.1f}</b>, best {best:.1f}{against}<br>"
                f"{html.escape(self.state)}")

    def curve(self) -> pd.DataFrame | None:
        """The points so far; None before the first (a plot given an empty table draws no line of what follows)."""
        rows = [(p["seconds"], p[key], name) for p in self.points
                for key, name in (("train_ppl", "train"), ("val_ppl", "held-out")) if p[key] is not None]
        if self.points:
            ends = (0.0, self.points[-1]["seconds"])
            rows += [(x, self.start[key], name) for key, name in (("unigram_ppl", "unigram"), ("bigram_ppl", "bigram"))
                     for x in ends if key in self.start]
        return pd.DataFrame(rows, columns=["seconds", "perplexity", "curve"]) if rows else None


def build(variants: dict[str, Variant], trained: Trained, writer: gr.Dropdown, shader: gr.Dropdown) -> None:
    """The Train tab inside the caller's Blocks; the Write and Score tabs' model lists (writer, shader) list this
    session's models once trained."""
    pickers = [writer, shader]
    shipped = {name: v for name, v in variants.items() if isinstance(v.model, CharRNN)}

    def choosable(request: gr.Request) -> dict[str, Variant]:
        """The models a training may start from: the app's character models, then the session's own."""
        return {**shipped, **(trained.models_of(request.session_hash) if request else {})}

    def starts(request: gr.Request) -> list[str]:
        return [SCRATCH, *choosable(request)]

    def start_of(name: str, request: gr.Request) -> Variant | None:
        if name in (None, "", SCRATCH):
            return None
        found = choosable(request)
        if name not in found:
            raise refusal(f"Unknown model {name!r} to start from; choose one of: {', '.join(starts(request))}.")
        return found[name]

    def begin(text: str, start: str, cell: str, size: str, minutes: float, name: str, lr: float, batch_size: int,
              num_steps: int, dropout: float, seed: int, request: gr.Request) -> Iterator[tuple[Run, dict]]:
        """The training asked for, checked now (a refusal says what is wrong), its events with the page's view of
        them as they come."""
        name = string("Name", name, limits.NAME)
        config = config_for(text, start_of(start, request), cell, size, minutes, lr, batch_size, num_steps,
                            dropout, seed, most_minutes(trained))
        try:
            training, run = trained.start(request.session_hash, config, own_name(name), text), Run()
        except Refused as e:
            raise refused(e) from None

        def events():
            for event in training.events():
                run.take(event)
                yield run, event
        return events()

    def train(text: str, start: str = SCRATCH, cell: str = "lstm", size: str = "small", minutes: float = 2.0,
              name: str = "my-model", request: gr.Request = None) -> Iterator[dict]:
        """Train a character model on `text` for a few minutes, streaming its progress; it then writes in this
        session (another session never sees it) and can be downloaded.

        Args:
            text: the text to learn, $TRAINING_TEXT characters, at most $PASTED_TRAINING_TEXT sent here (a tenth of it,
                at most $MOST_HELD_OUT, is held out).
            start: "from scratch", or a model's name (the `models` tool) to fine-tune on the text.
            cell: rnn-scratch, rnn, gru or lstm (from scratch only).
            size: small, medium or large (from scratch only).
            minutes: the time budget, $TRAINING_MINUTES; the best weights measured are kept.
            name: the name the model gets in this session's lists.

        Returns:
            events, one at a time: waiting (place in line), start (params, vocab_size, unigram_ppl, bigram_ppl),
            point (seconds, epoch, train_ppl, val_ppl, sample), saving, and last done (model: its name for
            /generate, /candidates, /score and /compare in this session; download: the zip's URL path) or failed
            (message).
        """
        text = the_text(text, None, None)
        for run, event in begin(text, start, cell, size, minutes, name, TrainConfig.lr, TrainConfig.batch_size,
                                TrainConfig.num_steps, TrainConfig.dropout, TrainConfig.seed, request):
            if event["event"] == "point":
                event = {k: event[k] for k in ("seconds", "epoch", "step", "train_ppl", "val_ppl", "best")} | {
                    "event": "point", "sample": next(iter(event["samples"].values()), "")}
            if event["event"] == "done":
                event = {"event": "done", "model": event["model"],
                         "download": f"/gradio_api/file={archive_of(event['model'], request)}"}
            if event["event"] == "failed":
                raise refusal(event["message"])
            yield event

    def train_page(text, uploaded, corpus, start, cell, size, minutes, name, lr, batch_size, num_steps, dropout,
                   seed, write_model, score_model, request: gr.Request):
        chosen = (write_model, score_model)
        keep = [gr.skip()] * (2 + len(pickers))
        source = the_text(text, uploaded, corpus)
        # No yield before the training's events begin: a training never iterated would keep its place in line.
        events = begin(source, start, cell, size, minutes, name, lr, batch_size, num_steps, dropout, seed, request)
        for run, event in events:
            if event["event"] == "failed":
                yield f"⚠️ {html.escape(event['message'])}", gr.skip(), gr.skip(), *keep
                return
            if event["event"] == "done":
                zipped = archive_of(event["model"], request)
                listed = list(models_for(variants, request))
                yield (run.status(), run.curve(), "\n\n".join(run.samples),
                       gr.DownloadButton(value=str(zipped), visible=True, label=f"Download {zipped.name}"),
                       gr.Dropdown(choices=starts(request)),
                       *[gr.Dropdown(choices=listed, value=value) for value in chosen])
                return
            yield run.status(), run.curve(), "\n\n".join(run.samples), gr.DownloadButton(visible=False), *keep[1:]

    def own_name(name: str) -> str:
        """A name for a session's model that no model of the app's, nor "from scratch", has."""
        name = name.strip()[:limits.NAME] or "my-model"
        return f"{name} (yours)" if name in variants or name == SCRATCH else name

    def archive_of(name: str, request: gr.Request) -> Path:
        try:
            return trained.zipped(request.session_hash, name)
        except ValueError as e:
            raise refused(e) from None

    def stop(request: gr.Request) -> str:
        trainings = trained.running_for(request.session_hash)
        for training in trainings:
            training.stop()
        return "Stopping: the best weights measured are being saved…" if trainings else gr.skip()

    def continue_from(archive, write_model, score_model, request: gr.Request):
        chosen = (write_model, score_model)
        if not archive:
            return gr.skip(), gr.skip(), *[gr.skip()] * len(pickers)
        try:
            name = trained.unpack(request.session_hash, Path(archive), own_name(Path(archive).stem), variants)
        except (ValueError, ModelFileError) as e:
            raise refusal(f"That zip cannot be continued: {e}.") from None
        listed = list(models_for(variants, request))
        return (f"Loaded <b>{html.escape(name)}</b>: it is in this session's lists, and chosen to start from.",
                gr.Dropdown(choices=starts(request), value=name),
                *[gr.Dropdown(choices=listed, value=v) for v in chosen])

    def push(name: str, repo: str, token: str, oauth_token: gr.OAuthToken | None, request: gr.Request) -> str:
        own = trained.models_of(request.session_hash)
        if name not in own or not Path(own[name].source).is_dir():
            raise refusal("Train a model first (or load a zip): this session has none to push now.")
        return publish(Path(own[name].source), string("Repo name", repo, limits.REPO_NAME).strip(),
                       (oauth_token.token if oauth_token else None) or string("Token", token, limits.TOKEN).strip()
                       or None)

    gr.Markdown("Train a model on your own text: paste it, upload a `.txt` file (UTF-8, from "
                f"{limits.TRAINING_TEXT.low:,} characters to {limits.TRAINING_TEXT.high:,}) or pick a bundled corpus. "
                "Watch it learn; then write with it in the other tabs (only you see it), download it, or push it to "
                f"the Hub. Trained models are deleted {limits.KEEP_AFTER_SESSION // 60} minutes after you close this "
                "tab.")
    with gr.Row():
        text = gr.Textbox(label="Text to learn", lines=8, max_lines=14, scale=3, max_length=limits.PASTED_TRAINING_TEXT,
                          placeholder=f"lyrics, poems, prose… ({limits.TRAINING_TEXT.low:,} characters at least)")
        with gr.Column(scale=2, min_width=240):
            uploaded = gr.File(label="or upload a .txt file", file_types=[".txt"], type="filepath", height=110)
            corpus = gr.Dropdown(["", *bundled()], value="", label="or a bundled corpus", visible=bool(bundled()))
    with gr.Row():
        start = gr.Dropdown([SCRATCH, *shipped], value=SCRATCH, label="Start from", min_width=200,
                            info="a trained model is fine-tuned: its vocabulary grows by your text's characters")
        cell = gr.Dropdown([(CELL_NAMES.get(c, c), c) for c in CELLS], value="lstm", label="Cell", min_width=160,
                           info="from scratch only")
        size = gr.Radio(list(SIZES), value="small", label="Size", min_width=200, info="from scratch only")
        minutes = gr.Slider(limits.TRAINING_MINUTES.low, most_minutes(trained), value=default_minutes(trained),
                            step=0.25,
                            label="Minutes", info="the time budget", min_width=200)
    sizes = gr.Markdown(sizes_note("", "lstm"), elem_id="sizes")
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            name = gr.Textbox("my-model", label="Name", max_lines=1, min_width=160, max_length=limits.NAME)
            lr = gr.Number(TrainConfig.lr, label="Learning rate", minimum=limits.LEARNING_RATE.low,
                           maximum=limits.LEARNING_RATE.high, min_width=120)
            batch_size = gr.Number(TrainConfig.batch_size, label="Batch size", precision=0,
                                   minimum=limits.BATCH_SIZE.low, maximum=limits.BATCH_SIZE.high, min_width=120)
            num_steps = gr.Number(TrainConfig.num_steps, label="Sequence length", precision=0,
                                  minimum=limits.SEQUENCE_LENGTH.low, maximum=limits.SEQUENCE_LENGTH.high,
                                  min_width=120)
            dropout = gr.Slider(*limits.DROPOUT, value=TrainConfig.dropout, step=0.05, label="Dropout", min_width=160)
            seed = gr.Number(TrainConfig.seed, label="Seed", precision=0, minimum=limits.SEED.low, maximum=limits.SEED.high,
                             min_width=100)
        archive = gr.File(label="Continue a model you downloaded (.zip)", file_types=[".zip"], type="filepath",
                          height=90)
    with gr.Row():
        go = gr.Button("Start training", variant="primary", min_width=140)
        halt = gr.Button("Stop", variant="stop", min_width=100)
    status = gr.HTML(elem_id="train-status")
    curve = gr.LinePlot(None, x="seconds", y="perplexity", color="curve", color_title="",
                        title="Perplexity (lower is better)",
                        x_title="seconds", y_title="perplexity", height=280, elem_id="train-curve", color_map=CURVES)
    samples = gr.Textbox(label="A sample at each point (newest first)", lines=6, max_lines=12, elem_id="train-samples")
    download = gr.DownloadButton("Download", visible=False)
    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        with gr.Row():
            if os.environ.get("SPACE_ID"):  # gradio's sign-in works on a Space; locally it needs the machine's login
                gr.LoginButton(min_width=200)
            repo = gr.Textbox(label="Repo name", placeholder="my-lyrics-model", max_lines=1, min_width=200,
                              info="created in your namespace if new")
            token = gr.Textbox(label="Token (write access)", type="password", max_lines=1, min_width=200,
                               info="empty: your sign-in, or this machine's login")
            pushed_model = gr.Dropdown([], label="Model", min_width=200, info="one this session trained")
        push_button = gr.Button("Push", min_width=100)
        pushed = gr.Markdown(elem_id="pushed")

    gr.on([text.change, cell.change], sizes_note, [text, cell], sizes, queue=False, show_progress="hidden",
          trigger_mode="always_last", api_visibility="private")
    run = go.click(train_page, [text, uploaded, corpus, start, cell, size, minutes, name, lr, batch_size, num_steps,
                                dropout, seed, *pickers], [status, curve, samples, download, start, *pickers],
                   concurrency_limit=None, trigger_mode="once", show_progress="hidden", api_visibility="private")
    def pushable(request: gr.Request) -> gr.Dropdown:
        own = list(trained.models_of(request.session_hash))
        return gr.Dropdown(choices=own, value=own[-1] if own else None)

    run.then(pushable, None, pushed_model, api_visibility="private")
    halt.click(stop, None, status, queue=False, api_visibility="private")
    archive.upload(continue_from, [archive, *pickers], [status, start, *pickers], api_visibility="private").then(
        pushable, None, pushed_model, api_visibility="private")
    push_button.click(push, [pushed_model, repo, token], pushed, api_visibility="private", concurrency_limit=2)
    # Not an MCP tool (undocumented: gradio lists only public endpoints as tools): gradio's MCP server calls every
    # tool through one client, one session, so a model one agent trained would be every agent's (docs/design.md).
    gr.api(documented(train, MOST_HELD_OUT=f"{MOST_HELD_OUT:,}"), api_name="train", concurrency_limit=None,
           api_visibility="undocumented")


@functools.cache
def library_wheel() -> Path:
    """The charrnn wheel a pushed model carries: the Space's own (beside its app.py), else one built from this
    checkout, once."""
    beside = sorted(Path.cwd().glob("charrnn-*.whl"))
    return beside[-1] if beside else build_wheel(Path(tempfile.mkdtemp(prefix="charrnn-wheel-")))


def publish(folder: Path, repo_name: str, token: str | None, endpoint: str | None = None) -> str:
    """The trained folder pushed to the token's user's namespace as repo_name (created if new), with its card and
    the library's wheel; a sentence with the repo's URL, or a refusal that says what to do."""
    token = token or get_token()
    if not token:
        raise refusal("Sign in with Hugging Face, paste a token with write access, or log this machine in "
                      "(`hf auth login`) to push.")
    if not repo_name:
        raise refusal("Give the repo a name, e.g. my-lyrics-model.")
    try:
        api = HfApi(token=token, endpoint=endpoint)
        repo_id = check_repo_id(f"{api.whoami()['name']}/{repo_name}")
        commit = model_commit(folder, repo_id, wheel=library_wheel())
        url = commit.upload(token, endpoint)
    except (HubCardError, HFValidationError, ModelFileError) as e:
        raise refusal(f"{e}.") from None
    except (KeyError, TypeError) as e:  # a model loaded from a zip whose metrics.json says too little for its card
        raise refusal(f"This model's metrics.json lacks {e}, which its card needs: train it here to push it.") from None
    except HfHubHTTPError as e:
        raise refusal(hub_refusal(e, repo_name)) from None
    except UNREACHABLE as e:  # no network, the endpoint down
        raise refusal(f"Could not reach the Hub ({type(e).__name__}); the model is still here to download.") from None
    return f"Pushed to [{repo_id}]({url.split('/commit/')[0]})."


def hub_refusal(error: HfHubHTTPError, repo_name: str) -> str:
    status = error.response.status_code if error.response is not None else None
    if status == 401:
        return "The Hub did not accept this token (signed out, or it was revoked): sign in again or paste another."
    if status == 403:
        return ("This token may not create or write repos: sign in again allowing it, or use a token with write "
                "access.")
    if status == 409:
        return (f"{repo_name!r} is taken in your namespace by a repo of another type (a dataset or a Space): choose "
                "another name.")
    return (f"The Hub refused the push (HTTP {status}): {str(error).splitlines()[0]}. The model is still here to "
            "download.")
