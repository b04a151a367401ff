"""The next-line task: consecutive line pairs of the text, the first line the source, the second (with its line
break) the target. Pairs come from each side of the split separately, so none crosses it."""
import math
from typing import NamedTuple

import numpy as np
import torch

from charrnn import CharRNN
from charrnn.counts import Bigram
from charrnn.evaluate import Judge
from charrnn.next_line import NextLine
from charrnn.vocab import Vocab, normalize

from .data import rare_to_unk
from .distributed import unwrapped
from .mixture import best_shares, mixture_nll
from .objective import smoothed_loss, unigram

IGNORED = -100  # the target of a padding position
EVAL_BATCH = 256
SHARPNESS = (0.03, 0.1, 0.3, 1.0)  # the fusion's cache sharpness tried on the held-out pairs
# The training perplexity in the metrics is measured on at most this many training pairs: a fused model reads them one
# at a time, and on a large upload the rest would keep its person waiting for a figure these already say.
TRAIN_PAIRS = 2_000


def line_pairs(text: str) -> list[tuple[str, str]]:
    """(a line, the line after it) for every two consecutive non-empty lines."""
    lines = normalize(text).split("\n")
    return [(a, b) for a, b in zip(lines, lines[1:]) if a and b]


def padded(rows: list[list[int]], fill: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), fill, dtype=torch.long)
    for k, row in enumerate(rows):
        out[k, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def batch_of(pairs: list[tuple[list[int], list[int]]], newline: int) -> list[torch.Tensor]:
    """source [B, S], its lengths [B], the decoder's inputs [B, T] and targets [B, T] (padding: IGNORED)."""
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    return [padded(sources, 0), torch.tensor([len(s) for s in sources]), padded([[newline] + t[:-1] for t in targets], 0),
            padded(targets, IGNORED)]


def encode_pairs(pairs: list[tuple[str, str]], vocab: Vocab) -> list[tuple[list[int], list[int]]]:
    return [(vocab.encode(a), vocab.encode(b + "\n")) for a, b in pairs]


def flat_loss(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits and targets of a batch's real (unpadded) positions."""
    source, lengths, previous, targets = batch
    logits, _ = model(source, lengths, previous)
    kept = targets != IGNORED
    return logits[kept], targets[kept]


@torch.inference_mode()
def pair_perplexity(model: NextLine, pairs: list[tuple[list[int], list[int]]]) -> float:
    """The fair per-character perplexity of each pair's second line (its break included) given the first: the same
    figure as NextLine.score on every pair, in batches."""
    model.eval()
    nll, count = 0.0, 0
    for start in range(0, len(pairs), EVAL_BATCH):
        batch = [x.to(model.device) for x in batch_of(pairs[start:start + EVAL_BATCH], model.newline)]
        logits, targets = flat_loss(model, batch)
        judge = Judge(len(targets), len(model.vocab), model.vocab.unk_id, details=False)
        judge(logits, targets, 0)
        nll, count = nll + judge.nll, count + len(targets)
    return math.exp(nll / count)


def scored_perplexity(model: NextLine, pairs: list[tuple[str, str]]) -> float:
    """The fair per-character perplexity of each pair's second line given the first, from NextLine.score one pair at
    a time: the figure pair_perplexity gives in batches, for a fused model too."""
    return pooled([model.score(b, context=a, details=False) for a, b in pairs])


def pooled(scores) -> float:
    """The perplexity of scored texts taken together."""
    return math.exp(sum(s.nll for s in scores) / sum(s.count for s in scores))


def primed_perplexity(model: CharRNN, pairs: list[tuple[str, str]]) -> float:
    """A character model primed with each pair's first line between line breaks (as it reads a line in a lyric), on
    its second line (its break counted): what a next-line model must beat, read from the same line."""
    return pooled([model.score(b + "\n", context="\n" + a + "\n", details=False) for a, b in pairs])


def cross_fitted_perplexity(model: NextLine, language_model: CharRNN, pairs: list[tuple[str, str]],
                            parts: "Parts | None" = None) -> float:
    """The fusion's perplexity on the pairs with its shares and sharpness chosen on the other half of them (the
    first half, then the second): the figure best_fusion's fitting on the measured pairs cannot flatter. parts: the
    pairs' fusion_parts where already read. The model keeps its own fusion."""
    kept, half = (*model.shares, model.cache_sharpness), len(pairs) // 2
    parts = parts or fusion_parts(model, language_model, pairs)
    scores = []
    for fitted, measured in ((slice(None, half), slice(half, None)), (slice(half, None), slice(None, half))):
        model.fuse(language_model, *best_fusion(parts.of(fitted)))
        scores += [model.score(b, context=a, details=False) for a, b in pairs[measured]]
    model.fuse(language_model, *kept)
    return pooled(scores)


def attention_entropy(model: NextLine, pairs: list[tuple[str, str]], fused: bool = True) -> tuple[float, float]:
    """How peaked the attention is on these pairs: the mean entropy (nats) of its weights over the line answered,
    one row a written character, and the mean entropy of uniform weights over the same lines (looking everywhere).
    fused: the attention next_line shows (a fused model's cache's); else the encoder-decoder's own."""
    entropy = uniform = 0.0
    rows = 0
    for a, b in pairs:
        weights = model.read(a, b + "\n", fused)[2]  # [T, S]
        entropy += float(-(weights * weights.clamp_min(1e-12).log()).sum())
        uniform += len(weights) * math.log(weights.shape[1])
        rows += len(weights)
    return entropy / rows, uniform / rows


def part_probs(model: NextLine, language_model: CharRNN, pairs: list[tuple[str, str]], lm_share: float,
               cache_share: float, sharpness: float) -> list[np.ndarray]:
    """Each character's fair probability, pair by pair (every pair's second line after its first), with the model
    fused so (it stays fused so): with a share of 1, that part's alone."""
    model.fuse(language_model, lm_share, cache_share, sharpness)
    return [model.score(b, context=a).probs.astype(np.float64) for a, b in pairs]


class Parts(NamedTuple):
    """Each part of a fusion read alone on some pairs, pair by pair: the encoder-decoder, the primed character model,
    and the cache at each sharpness tried. A pair is read on its own, so the parts of some of the pairs are theirs."""
    decoder: list[np.ndarray]
    alone: list[np.ndarray]
    cache: dict[float, list[np.ndarray]]

    def of(self, pairs: slice) -> "Parts":
        return Parts(self.decoder[pairs], self.alone[pairs], {s: c[pairs] for s, c in self.cache.items()})


def fusion_parts(model: NextLine, language_model: CharRNN, pairs: list[tuple[str, str]]) -> Parts:
    return Parts(*(part_probs(model, language_model, pairs, lm, 0.0, 1.0) for lm in (0.0, 1.0)),
                 {sharpness: part_probs(model, language_model, pairs, 0.0, 1.0, sharpness) for sharpness in SHARPNESS})


def best_fusion(parts: Parts) -> tuple[float, float, float]:
    """The character model's share, the cache's share and its sharpness whose fusion scores the pairs best: the
    parts' probabilities of every character mixed on best_shares' grid (numbers fitted on those pairs, as a
    character model's count shares are; a fused distribution is the parts' mixture, so the fit is exact)."""
    decoder, alone = np.concatenate(parts.decoder), np.concatenate(parts.alone)
    found = []
    for sharpness, cache in parts.cache.items():
        cache = np.concatenate(cache)
        decoder_share, cache_share = best_shares(alone, decoder, cache)
        found.append((mixture_nll(alone, [decoder, cache], (decoder_share, cache_share)),
                      round(1 - decoder_share - cache_share, 2), cache_share, sharpness))
    return min(found)[1:]


class NextLineTask:
    def __init__(self, cfg, vocab: Vocab, train_text: str, val_text: str):
        if "\n" not in vocab:
            raise ValueError("--task next-line needs line breaks in the text (and --newlines keep)")
        for flag, value in (("--teacher", cfg.teacher), ("--lexicon", cfg.lexicon)):
            if value:
                raise ValueError(f"{flag} is for character models (--task chars)")
        self.cfg, self.vocab, self.train_text, self.val_text = cfg, vocab, train_text, val_text
        self.train_pairs, self.val_pairs = line_pairs(train_text), line_pairs(val_text)
        if not self.train_pairs or not self.val_pairs:
            raise ValueError("the text needs consecutive non-empty lines on both sides of the split")
        self.train_encoded = encode_pairs(self.train_pairs, vocab)
        self.val_encoded = encode_pairs(self.val_pairs, vocab)
        self.language_model = self.fused_with() if cfg.fuse_with else None  # checked before any training
        self.fitted_on = None  # the held-out pairs' fusion_parts, read once by mix, again of use to measures

    def fused_with(self) -> CharRNN:
        if len(self.val_pairs) < 2:
            raise ValueError("--fuse-with fits the fusion on the held-out pairs and checks it on each half: the "
                             "held-out text needs at least 2 line pairs (a longer text, or a larger --val-fraction)")
        language_model = CharRNN.from_pretrained(self.cfg.fuse_with)
        try:
            NextLine.check_fusable(self.vocab, language_model)
        except ValueError as e:
            raise ValueError(f"--fuse-with {self.cfg.fuse_with}: {e}") from None
        return language_model

    def build(self, start=None) -> NextLine:
        cfg = self.cfg
        model = NextLine(self.vocab.to_dict(), context=cfg.context, embed_size=cfg.embed_size,
                         hidden_size=cfg.hidden_size, dropout=cfg.dropout, smoothing=cfg.label_smoothing)
        targets = torch.tensor([i for _, t in self.train_encoded for i in t])
        model.prior.copy_(unigram(targets, len(self.vocab)))
        with torch.no_grad():  # start from the unigram, not the uniform: the first epochs learn pairs, not counts
            model.head.bias.copy_(model.prior.log())
        return model

    def batches(self, generator):
        """The training pairs in a new order, their rare characters turned into <unk> now and then (as CharTask)."""
        flat = torch.tensor([i for s, t in self.train_encoded for i in s + t])
        flat = rare_to_unk(flat, self.cfg.unk_dropout, self.vocab.unk_id, generator).tolist()
        pairs, at = [], 0
        for s, t in self.train_encoded:
            pairs.append((flat[at:at + len(s)], flat[at + len(s):at + len(s) + len(t)]))
            at += len(s) + len(t)
        order = torch.randperm(len(pairs), generator=generator).tolist()
        size = self.cfg.batch_size
        count = len(pairs) // size
        return (batch_of([pairs[k] for k in order[b * size:(b + 1) * size]], self.vocab.stoi["\n"])
                for b in range(count)), count

    def loss(self, model, batch):
        logits, targets = flat_loss(model, batch)
        return (*smoothed_loss(logits, targets, self.cfg.label_smoothing, unwrapped(model).prior),
                len(targets))

    def validate(self, model) -> float:
        return self.perplexity(model, self.val_pairs, self.val_encoded)

    def train_perplexity(self, model) -> float:
        return self.perplexity(model, self.train_pairs[:TRAIN_PAIRS], self.train_encoded[:TRAIN_PAIRS])

    @staticmethod
    def perplexity(model: NextLine, pairs: list[tuple[str, str]], encoded) -> float:
        """Batched for the encoder-decoder alone; pair by pair, as NextLine.score reads them, fused."""
        return scored_perplexity(model, pairs) if model.fusion else pair_perplexity(model, encoded)

    def samples(self, model) -> dict[str, str]:
        lines = [b for _, b in self.val_pairs[:3]]
        return {line: model.next_line(line, temperature=0.8, seed=self.cfg.seed) for line in lines}

    def measures(self, model: NextLine) -> dict:
        """The held-out pairs counted; with attention, how peaked it is on them (its mean entropy against looking
        everywhere alike); fused, the character model primed with the line and the fusion fitted on the other half of
        the pairs on the same pairs: what the card shows beside the perplexities."""
        found = {"val_pairs": len(self.val_pairs)}
        if model.attends:
            found["attention_entropy"], found["uniform_entropy"] = attention_entropy(model, self.val_pairs)
        if model.context == "attention" and model.fusion:
            found["decoder_attention_entropy"] = attention_entropy(model, self.val_pairs, fused=False)[0]
        if model.fusion:
            language_model = model.fusion.language_model
            found["primed_ppl"] = primed_perplexity(language_model, self.val_pairs)
            found["cross_fitted_ppl"] = cross_fitted_perplexity(model, language_model, self.val_pairs, self.fitted_on)
        return found

    def mix(self, model: NextLine, bigram: Bigram) -> NextLine:
        """With --fuse-with, the model fused with that character model as best_fusion finds on the held-out pairs;
        else the encoder-decoder as trained (it is not mixed with a count model)."""
        if self.language_model is None:
            return model
        language_model = self.language_model.to(model.device)
        self.fitted_on = fusion_parts(model, language_model, self.val_pairs)
        return model.fuse(language_model, *best_fusion(self.fitted_on))

    def baselines(self):
        """The bigram counted on the training text, and the unigram and bigram perplexities of the held-out pairs'
        second lines, each read after the line break that ends the first."""
        bigram = Bigram.count(self.train_text).tune(self.val_text)
        nll = {w: sum(bigram.score(b + "\n", "\n", weight=w).nll for _, b in self.val_pairs) for w in (0.0, None)}
        count = sum(len(b) + 1 for _, b in self.val_pairs)
        return bigram, {"unigram_ppl": math.exp(nll[0.0] / count), "bigram_ppl": math.exp(nll[None] / count)}
