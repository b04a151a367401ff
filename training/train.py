"""The training loop: batches -> loss -> clipped update -> averaged weights -> fair validation -> best kept."""
import contextlib
import copy
import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from charrnn import CharRNN, Vocab
from charrnn.counts import BIGRAM_NAME, Bigram
from charrnn.evaluate import count_probs, fair_perplexity, score
from charrnn.lexicon import Lexicon
from charrnn.names import METRICS_NAME
from charrnn.vocab import normalize

from . import checkpoint
from .distributed import World, joined, unwrapped
from .baselines import baselines
from .mixture import best_shares, mixture_nll
from .next_line import NextLineTask
from .objective import distilled_loss, smoothed_loss, teacher_targets, unigram
from .data import SAMPLERS, num_batches, rare_to_unk, read_corpus, split
from .progress import progress_file

DATA_DIR = Path(os.environ.get("CHARRNN_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
DEFAULT_CORPUS = str(DATA_DIR / "jaychou_lyrics.txt")
# Settings a resumed run may change; any other difference means a different run.
RESUMABLE_CHANGES = {"epochs", "max_minutes", "patience", "resume", "progress", "mix_counts", "lexicon", "eval_seconds",
                     "fuse_with"}
# The training perplexity in the metrics is measured on at most this much of the training text: scoring the rest of a
# large upload would keep its person waiting for a figure this many characters already say.
TRAIN_PPL_CHARS = 200_000
# The page's model sizes (embedding and recurrent state); the rest of a network is TrainConfig's default.
SIZES = {"small": dict(embed_size=64, hidden_size=128), "medium": dict(embed_size=128, hidden_size=256),
         "large": dict(embed_size=256, hidden_size=512)}
# What a trained model's config says of its network, which a run that starts from it takes as its own.
NETWORK_SETTINGS = ("cell", "embed_size", "hidden_size", "num_layers", "dropout", "one_hot", "head_size",
                    "embed_dropout", "weight_drop")


@dataclass
class TrainConfig:
    corpus: str = DEFAULT_CORPUS
    out: str = "models/charrnn"
    task: str = "chars"
    context: str = "attention"
    cell: str = "lstm"
    embed_size: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.4
    embed_dropout: float = 0.1
    weight_drop: float = 0.4
    one_hot: bool = False
    head_size: int = 64
    min_count: int = 2
    unk_dropout: float = 2.0
    newlines: str = "keep"
    val_fraction: float = 0.1
    sampler: str = "random"
    batch_size: int = 32
    num_steps: int = 48
    bf16: bool = False
    optimizer: str = "adam"
    lr: float = 5e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    label_smoothing: float = 0.3
    ema: float = 0.99
    mix_counts: bool = True
    lexicon: str | None = None
    teacher: str | None = None
    distill: float = 0.6
    fuse_with: str | None = None
    epochs: int = 100
    patience: int = 8
    max_minutes: float | None = None
    eval_seconds: float = 0.0
    init_from: str | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint: str | None = None
    resume: bool = False
    progress: bool = True
    sample_prefixes: list[str] = field(default_factory=lambda: ["分开", "我想", "The "])
    sample_length: int = 40

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint or Path("checkpoints") / f"{Path(self.out).name}.pt")


def pick_device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def ema(decay: float):
    """Exponential moving average of the weights, with a warm-up so early epochs are not dominated by the init."""
    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        n = float(num_averaged)
        torch._foreach_lerp_(averaged, current, 1 - min(decay, (1 + n) / (10 + n)))
    return average


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be adam or sgd, got {cfg.optimizer!r}")


def detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def steps(model, averaged, optimizer, task, cfg, epoch, device, world=World()) -> Iterator[tuple[float, int, float]]:
    """One pass over the task's training batches, a step at a time: yields each step's training loss (unsmoothed,
    summed over its targets), its number of targets, on this rank, and the share of the epoch done. model is what training calls
    (DistributedDataParallel on more than one process)."""
    model.train()
    generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    # Dropout's draws: seeded per epoch (a resumed run draws what the uninterrupted one did), each rank its own.
    # A tuple of ints hashes the same in every process.
    torch.manual_seed(hash((cfg.seed, epoch, world.rank)))
    batches, total = task.batches(generator)
    bar = tqdm(batches, total=total, desc=f"epoch {epoch}", leave=False, disable=not (cfg.progress and world.main),
               unit="batch")
    for done, batch in enumerate(bar, 1):
        with torch.autocast(device.type, torch.bfloat16, enabled=cfg.bf16):
            loss, plain, n = task.loss(model, [x.to(device) for x in world.share(batch)])
        if world.size > 1:  # gradients are averaged over ranks: weigh each by its share of the batch's targets
            loss = loss * (n * world.size / world.total(n)[0])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        averaged.update_parameters(unwrapped(model))
        yield plain.item() * n, n, done / max(total, done)


class CharTask:
    """The character model: random (or sequential) windows of the training text, each character predicting the next."""

    def __init__(self, cfg: TrainConfig, vocab: Vocab, train_text: str, val_text: str):
        self.cfg, self.vocab, self.train_text, self.val_text = cfg, vocab, train_text, val_text
        self.ids = torch.tensor(vocab.encode(train_text))
        self.state = None
        if not 0 <= cfg.distill <= 1:
            raise ValueError(f"--distill is the teacher's share of the loss, from 0 to 1; got {cfg.distill}")
        if cfg.fuse_with:
            raise ValueError("--fuse-with is for next-line models (--task next-line)")
        self.taught = teacher_targets(self.teacher(), self.ids) if cfg.teacher else None  # [N, V]
        if cfg.lexicon and not cfg.mix_counts:
            raise ValueError("--lexicon is a count model mixed into the model's probabilities: it needs --mix-counts")
        # Every character of the training text, not only the vocabulary's: the bigram baseline counts them all.
        self.counted = sorted(set(normalize(train_text, cfg.newlines)))
        # Every character of the word list: the lexicon knows characters the training text never showed.
        self.lexicon = Lexicon.of_language(cfg.lexicon) if cfg.lexicon else None

    def teacher(self) -> CharRNN:
        """The trained model whose network this one learns from as well (knowledge distillation), on the same
        vocabulary."""
        teacher = CharRNN.from_pretrained(self.cfg.teacher)
        if teacher.vocab.to_dict() != self.vocab.to_dict():
            raise ValueError(f"the teacher {self.cfg.teacher} has another vocabulary: train it on the same corpus "
                             "with the same --min-count and --newlines")
        return teacher

    def build(self, start: CharRNN | None = None) -> CharRNN:
        """A fresh model as cfg says, or start (a trained network on this vocabulary), its smoothing prior the
        unigram of the training ids."""
        cfg = self.cfg
        if start is not None:  # the lexicon it mixed in, a word list, serves this text as well: its share is fitted anew
            if self.lexicon is None and cfg.mix_counts:
                self.lexicon = start.lexicon
            start.lexicon = None
        model = start or CharRNN(self.vocab.to_dict(), cell=cfg.cell, embed_size=cfg.embed_size, hidden_size=cfg.hidden_size,
                        num_layers=cfg.num_layers, dropout=cfg.dropout, one_hot=cfg.one_hot, head_size=cfg.head_size,
                        embed_dropout=cfg.embed_dropout, weight_drop=cfg.weight_drop, smoothing=cfg.label_smoothing)
        model.prior.copy_(unigram(self.ids, len(self.vocab)))
        return model

    def batches(self, generator):
        cfg, self.state = self.cfg, None
        ids = rare_to_unk(self.ids, cfg.unk_dropout, self.vocab.unk_id, generator)
        total = num_batches(len(ids), cfg.batch_size, cfg.num_steps)
        if self.taught is None:
            return SAMPLERS[cfg.sampler](ids, cfg.batch_size, cfg.num_steps, generator), total
        positions = SAMPLERS[cfg.sampler](torch.arange(len(ids)), cfg.batch_size, cfg.num_steps, generator)
        return ((ids[x], ids[y], self.taught[x]) for x, y in positions), total

    def loss(self, model, batch):
        x, y, *taught = batch
        logits, state = model(x, self.state if self.cfg.sampler == "sequential" else None)
        self.state = detach(state)
        prior = unwrapped(model).prior
        loss, plain = smoothed_loss(logits.flatten(0, 1), y.flatten(), self.cfg.label_smoothing, prior)
        if taught:
            loss = (1 - self.cfg.distill) * loss + self.cfg.distill * distilled_loss(logits, *taught)
        return loss, plain, y.numel()

    def validate(self, model) -> float:
        return fair_perplexity(model, self.val_text)

    def train_perplexity(self, model) -> float:
        return score(model, self.train_text[:TRAIN_PPL_CHARS], details=False).perplexity

    def samples(self, model) -> dict[str, str]:
        cfg = self.cfg
        prefixes = [p for p in cfg.sample_prefixes if not model.vocab.unknown(p)] or [""]
        return {p: model.generate(p, cfg.sample_length, temperature=0.8, seed=cfg.seed) for p in prefixes}

    def baselines(self) -> tuple[Bigram, dict]:
        """The bigram counted on the training text, and the held-out perplexities of the unigram, the bigram and,
        with a lexicon, the bigram and the lexicon mixed (their share chosen as the models' are)."""
        bigram, unigram_ppl, bigram_ppl = baselines(self.train_text, self.val_text, self.cfg.newlines)
        found = {"unigram_ppl": unigram_ppl, "bigram_ppl": bigram_ppl}
        if self.lexicon:
            counted = Vocab(self.counted, self.cfg.newlines)
            parts = [count_probs(counts, counted, self.val_text) for counts in (bigram, self.lexicon)]
            found["bigram_lexicon_ppl"] = math.exp(mixture_nll(parts[0], parts[1:], best_shares(*parts)) / len(parts[0]))
        return bigram, found

    def measures(self, model) -> dict:
        """What a character model's card shows beyond the perplexities: nothing more."""
        return {}

    def mix(self, model: CharRNN, bigram: Bigram) -> CharRNN:
        """The model with its count models (the bigram, and the lexicon if any) mixed in at the shares that score
        the held-out text best, as the bigram's own weight is chosen (numbers fitted on that text, the same optimism
        as the baseline's)."""
        if not self.cfg.mix_counts:
            return model
        counts = [bigram, *([self.lexicon] if self.lexicon else [])]
        parts = [count_probs(c, self.vocab, self.val_text) for c in counts]
        shares = best_shares(score(model, self.val_text).probs.astype(np.float64), *parts)
        return model.mix_counts(bigram, shares[0], self.lexicon, shares[1] if self.lexicon else 0.0)


def check_resumable(saved: dict, cfg: TrainConfig) -> None:
    now = dataclasses.asdict(cfg)
    changed = [k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
    if changed:
        raise ValueError(f"cannot resume {cfg.checkpoint_path}: it was made with other settings ({', '.join(changed)})")


def export(model, bigram: Bigram, out: Path, metrics: dict) -> None:
    """Write the Hub-ready folder next to its final place, then swap it in, so a failure leaves the old one."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)  # with the count model it mixes in, if any: that is the bigram
    if not (tmp / BIGRAM_NAME).exists():
        bigram.save(tmp / BIGRAM_NAME)
    (tmp / METRICS_NAME).write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


TASKS = {"chars": CharTask, "next-line": NextLineTask}


def train(cfg: TrainConfig, report: Callable[[dict], None] | None = None, stop=None) -> dict:
    """Train one variant and export its best weights to cfg.out; returns the metrics written beside them.

    report, if given, is called with each event of the run, a dict: first {"event": "start", ...} (the model's size,
    the text's, and the unigram's and bigram's held-out perplexities), then {"event": "point", ...} at every
    measurement (training and held-out perplexity, a sample from each prefix, and whether it is the best so far),
    then {"event": "saving"}. stop, a threading.Event, ends the run at the next step once set; like the time
    budget and patience, it keeps the best weights measured. Under torchrun every process calls this; each returns
    the same metrics."""
    with joined(pick_device(cfg.device)) as (world, device):
        return train_in(world, device, cfg, report, stop)


def starting_model(cfg: TrainConfig, train_text: str) -> tuple[TrainConfig, CharRNN | None, Vocab, int]:
    """The settings the run trains with, the model it starts from (None: a new one), its vocabulary and how many
    characters that vocabulary gained. A run from
    a trained model (cfg.init_from) takes its network's settings and vocabulary, grown by the characters of the
    training text it lacks (seen min_count times); its count models are counted anew on this text, its lexicon
    (a word list, no text's) kept."""
    if not cfg.init_from:
        return cfg, None, Vocab.build(train_text, cfg.min_count, cfg.newlines), 0
    if cfg.task != "chars":
        raise ValueError("--init-from continues a character model: it cannot start a next-line model")
    trained = CharRNN.from_pretrained(cfg.init_from)
    model = trained.with_characters(Vocab.build(train_text, cfg.min_count, trained.vocab.newlines).chars)
    model.lexicon = trained.lexicon
    network = {name: trained._hub_mixin_config[name] for name in NETWORK_SETTINGS}
    grown = len(model.vocab) - len(trained.vocab)
    return dataclasses.replace(cfg, newlines=trained.vocab.newlines, **network), model, model.vocab, grown


def train_in(world, device, cfg: TrainConfig, report: Callable[[dict], None] | None = None, stop=None) -> dict:
    world.check(cfg.batch_size)
    text = read_corpus(cfg.corpus)
    train_text, val_text = split(text, cfg.val_fraction)
    cfg, start, vocab, grown = starting_model(cfg, train_text)
    task = TASKS[cfg.task](cfg, vocab, train_text, val_text)
    torch.manual_seed(cfg.seed)
    model = task.build(start).to(device)
    averaged = AveragedModel(model, multi_avg_fn=ema(cfg.ema), use_buffers=True)
    optimizer = make_optimizer(cfg, model.parameters())
    run = {"epoch": 0, "best_val": math.inf, "best_epoch": 0, "seconds": 0.0, "train_seconds": 0.0, "chars": 0,
           "steps": 0, "since_best": 0, "history": []}
    best_state = copy.deepcopy(averaged.module.state_dict())

    path = cfg.checkpoint_path
    if cfg.resume and path.exists():  # every rank reads it: each has its own optimizer state to restore
        saved = checkpoint.load(path)
        check_resumable(saved["config"], cfg)
        model.load_state_dict(saved["model"])
        averaged.load_state_dict(saved["averaged"])
        optimizer.load_state_dict(saved["optimizer"])
        best_state, run = saved["best"], saved["run"]
        run.setdefault("steps", 0)
        run.setdefault("since_best", run["epoch"] - run["best_epoch"])
        if world.main:
            tqdm.write(f"resumed {path} after epoch {run['epoch']}")
    bigram, baseline_ppls = task.baselines() if world.main else (None, {})
    if world.main and report:
        report({"event": "start", "params": model.num_parameters(), "vocab_size": len(vocab),
                "new_characters": grown, "train_chars": len(train_text),
                "val_chars": len(val_text), "budget_seconds": 60 * cfg.max_minutes if cfg.max_minutes else None,
                "device": str(device), **baseline_ppls})
    trained_model = world.wrap(model)
    clock = Clock(run["seconds"])
    stopped = False

    def measure(epoch: float, loss_sum: float, count: int) -> None:
        """A point of the curve (rank 0): the averaged weights on held-out text, kept if the best so far."""
        nonlocal best_state
        val_ppl = task.validate(averaged.module)
        best = val_ppl < run["best_val"]
        run["since_best"] = 0 if best else run["since_best"] + 1
        if best:
            run["best_val"], run["best_epoch"] = val_ppl, math.ceil(epoch)
            best_state = copy.deepcopy(averaged.module.state_dict())
        run["seconds"] = clock.seconds()
        train_ppl = math.exp(loss_sum / count) if count else None  # None: the starting point, before any step
        point = {"epoch": round(epoch, 3), "step": run["steps"], "train_ppl": train_ppl, "val_ppl": val_ppl,
                 "seconds": round(run["seconds"], 2), "chars": run["chars"]}
        run["history"].append(point)
        write_progress(cfg, run)
        if cfg.progress:
            trained_ppl = f"{train_ppl:8.2f}" if train_ppl else "       -"
            tqdm.write(f"epoch {epoch:7.2f}  train ppl {trained_ppl}  val ppl {val_ppl:8.2f}"
                       f"{'  *best' if best else ''}  {run['seconds']:6.1f}s")
        if report:
            report({"event": "point", **point, "best": best, "samples": task.samples(averaged.module)})

    loss_sum, count = 0.0, 0  # the training loss since the last point

    def point(epoch: float) -> None:
        """A point of the curve, every rank taking part."""
        nonlocal loss_sum, count
        total_loss, total_count = world.total(loss_sum, count)
        if world.main:
            with clock.measuring():
                measure(epoch, total_loss, total_count)
        loss_sum, count = 0.0, 0

    def decision() -> str | None:
        """Rank 0's word after a step, on every rank: "stop", "point" or None."""
        patient = run["since_best"] < cfg.patience
        return world.from_main(world.main and (clock.due(cfg, stop) if patient else "stop"))

    if start is not None and not run["history"]:  # where it starts: the best is never worse than the trained model
        point(0.0)  # which writes the progress file
    elif world.main:
        write_progress(cfg, run)
    for epoch in range(run["epoch"] + 1, cfg.epochs + 1):
        if stopped or run["since_best"] >= cfg.patience:
            break
        for step_loss, n, done in steps(trained_model, averaged, optimizer, task, cfg, epoch, device, world):
            loss_sum, count = loss_sum + step_loss, count + n
            run["steps"] += 1
            run["chars"] += int(world.total(n)[0])
            clock.trained()
            if now := decision():
                point(epoch - 1 + done)
                now = decision()  # a stop asked for by the report, or patience run out
            if now == "stop":
                stopped = True
                break
        if stopped:
            break
        if not cfg.eval_seconds:  # else the points come by time, and epochs may be much shorter
            point(epoch)
        if world.main:
            run["epoch"], run["train_seconds"], run["seconds"] = epoch, clock.training, clock.seconds()
            checkpoint.save(path, {"config": dataclasses.asdict(cfg), "model": model.state_dict(),
                                   "averaged": averaged.state_dict(), "optimizer": optimizer.state_dict(),
                                   "best": best_state, "run": run})
        run = world.from_main(run)  # every rank stops where rank 0 does
    if count:  # steps since the last point (the last epochs of a run measured by time)
        point(run["epoch"])

    if not world.main:
        return world.from_main(None)
    if report:
        report({"event": "saving"})
    run["train_seconds"], run["seconds"] = clock.training, clock.seconds()
    model.load_state_dict(best_state)
    model = task.mix(model, bigram)
    metrics = final_metrics(model, task, run, text, baseline_ppls) | {"processes": world.size}
    export(model, bigram, Path(cfg.out), metrics)
    progress_file(cfg.out).unlink(missing_ok=True)
    if cfg.progress:
        lexicon = f", the lexicon at {metrics['lexicon_weight']:.0%}" if metrics["lexicon_weight"] else ""
        mixed = (f", the bigram mixed in at {metrics['count_weight']:.0%}{lexicon}" if cfg.task == "chars" else
                 f", fused with {cfg.fuse_with}" if cfg.fuse_with else "")
        tqdm.write(f"held-out ppl {metrics['val_ppl']:.2f} (the network alone {run['best_val']:.2f} at epoch "
                   f"{run['best_epoch']}{mixed}); saved to {cfg.out}")
    return world.from_main(metrics)


class Clock:
    """A run's time: all of it (from `before` seconds of earlier sessions of the run), and the part spent on
    training steps, apart from measuring; says when the next point is due."""

    def __init__(self, before: float = 0.0):
        self.started = time.perf_counter() - before
        self.training, self.measured, self.last_point, self.mark = 0.0, 0.0, self.seconds(), self.seconds()

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def trained(self) -> None:
        """A step ended: the time since the last mark was training."""
        now = self.seconds()
        self.training, self.mark = self.training + now - self.mark, now

    @contextlib.contextmanager
    def measuring(self):
        yield
        self.mark = self.last_point = self.seconds()

    def due(self, cfg: TrainConfig, stop) -> str | None:
        """After a step: "stop" when asked to or past the time budget, "point" when cfg.eval_seconds have passed
        since the last point, else None (the epoch's end measures anyway)."""
        if (stop is not None and stop.is_set()) or (cfg.max_minutes is not None and
                                                     self.seconds() >= 60 * cfg.max_minutes):
            return "stop"
        if cfg.eval_seconds and self.seconds() - self.last_point >= cfg.eval_seconds:
            return "point"
        return None


def write_progress(cfg: TrainConfig, run: dict) -> None:
    """Where the run is, for whoever waits for the model (written whole, then swapped in)."""
    path = progress_file(cfg.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    last = run["history"][-1] if run["history"] else {"epoch": run["epoch"], "val_ppl": None}  # the last point
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"epoch": last["epoch"], "epochs": cfg.epochs, "seconds": round(run["seconds"], 1),
                               "budget_seconds": 60 * cfg.max_minutes if cfg.max_minutes else None,
                               "val_ppl": last["val_ppl"]}))
    os.replace(tmp, path)


def final_metrics(model, task, run, text, baseline_ppls: dict) -> dict:
    cfg, train_text = task.cfg, task.train_text
    return {
        "corpus": Path(cfg.corpus).name,
        "corpus_chars": len(text), "train_chars": len(train_text), "val_chars": len(text) - len(train_text),
        "val_fraction": cfg.val_fraction,
        "vocab_size": len(model.vocab), "params": model.num_parameters(),
        "train_ppl": task.train_perplexity(model),  # on at most TRAIN_PPL_CHARS of it
        "val_ppl": task.validate(model),
        "network_val_ppl": run["best_val"], "count_weight": getattr(model, "count_weight", 0.0),
        "lexicon_weight": getattr(model, "lexicon_weight", 0.0),
        **baseline_ppls, **task.measures(model),
        "best_epoch": run["best_epoch"], "epochs": run["history"][-1]["epoch"] if run["history"] else 0,
        "train_seconds": round(run["seconds"], 2),
        "chars_per_second": round(run["chars"] / max(run["train_seconds"], 1e-9)),  # training steps only
        "steps": run["steps"],
        "history": run["history"],
        "samples": task.samples(model),
        "device": str(next(model.parameters()).device), "torch": torch.__version__,
        "train_config": dataclasses.asdict(cfg),
    }
