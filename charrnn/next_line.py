"""NextLine: an encoder-decoder (Seq2Seq) that writes the line that follows a line, one character at a time.

The encoder, a GRU (bidirectional by default), reads the line; the decoder, a GRU cell, writes the next line
and stops at its line break. How the encoder hands its context to the decoder is the `context` setting:
  "init"        c (the encoder's final states) becomes the decoder's first state, and nothing more;
  "every-step"  ... and c is also an input at every decoder step;
  "attention"   ... and every step i gets its own c_i = sum_j a_ij h_j instead, the weights a_ij from the
                decoder's previous state and encoder state j (additive attention, Bahdanau et al. 2015).
The line break is both the decoder's start token and its end, so the vocabulary is CharRNN's own.
A model fused with a character model (`fuse`, charrnn/fusion.py) mixes the character model primed with the line and a
cache over that line into every next character's distribution, in scoring and in decoding alike.
"""
import math
from collections.abc import Iterator

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import evaluate, limits, loading
from .cells import dropout
from .decoding import Sampler, Uniforms, backends, without_prior
from .errors import BadValue, ModelFileError
from .form import Options, check, is_whole
from .fusion import LANGUAGE_MODEL, Fusion, Shares
from .model import CharRNN
from .vocab import Vocab, normalize

CONTEXTS = ("init", "every-step", "attention")


class NextLine(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="charrnn",
    tags=["char-rnn", "seq2seq", "attention", "lyrics"],
    pipeline_tag="text-generation",
    license="mit",
):
    def __init__(self, vocab: dict, context: str = "attention", embed_size: int = 128, hidden_size: int = 256,
                 bidirectional: bool = True, dropout: float = 0.0, smoothing: float = 0.0, lm_share: float = 0.0,
                 cache_share: float = 0.0, cache_sharpness: float = 1.0):
        """lm_share, cache_share, cache_sharpness: the fusion's (see fuse); from_pretrained loads its character
        model where a share is above 0."""
        super().__init__()
        self.shares, self.cache_sharpness = check_fusion(lm_share, cache_share, cache_sharpness)
        self.fusion = None
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(CONTEXTS)}; got {context!r}")
        self.vocab = Vocab.from_dict(vocab)
        if "\n" not in self.vocab:
            raise ValueError("a next-line model needs the line break in its vocabulary (newlines='keep')")
        self.context, self.dropout, self.smoothing = context, dropout, smoothing
        self.newline = self.vocab.stoi["\n"]
        vocab_size, memory = len(self.vocab), hidden_size * (2 if bidirectional else 1)
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.encoder = nn.GRU(embed_size, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.bridge = nn.Linear(memory, hidden_size)  # c -> the decoder's first state
        fed = memory if context != "init" else 0
        self.decoder = nn.GRUCell(embed_size + fed, hidden_size)
        if context == "attention":
            self.query = nn.Linear(hidden_size, hidden_size, bias=False)
            self.key = nn.Linear(memory, hidden_size)
            self.energy = nn.Linear(hidden_size, 1, bias=False)
        self.head = nn.Linear(hidden_size + fed, vocab_size)
        # The distribution label smoothing spread `smoothing` of each target over; decoding removes it again.
        self.register_buffer("prior", torch.full((vocab_size,), 1 / vocab_size))

    def fuse(self, language_model: CharRNN, lm_share: float, cache_share: float, sharpness: float) -> "NextLine":
        """Mix language_model primed with the line (lm_share of every probability) and the cache over the line
        (cache_share, its weights softmax(sharpness * key . query)) into the model's distributions; saved with the
        model (config.json, and the character model in the subfolder language_model/)."""
        self.check_fusable(self.vocab, language_model)
        self.shares, self.cache_sharpness = check_fusion(lm_share, cache_share, sharpness)
        self.fusion = Fusion(language_model, self.shares, sharpness) if any(self.shares) else None
        self._hub_mixin_config = {**self._hub_mixin_config, "lm_share": lm_share, "cache_share": cache_share,
                                  "cache_sharpness": sharpness}
        return self

    @staticmethod
    def check_fusable(vocab: Vocab, language_model) -> None:
        if not isinstance(language_model, CharRNN) or language_model.vocab != vocab:
            raise ValueError("a next-line model is fused with a character model of the same vocabulary: one "
                             "trained on the same corpus with the same min_count and newlines")

    @property
    def attends(self) -> bool:
        """Whether it shows where it looked: its own attention, or fused, its cache's."""
        return self.context == "attention" or self.fusion is not None

    def _apply(self, fn, *args, **kwargs):
        """to(), cuda() and the like move the character model it is fused with too."""
        if self.fusion:
            self.fusion.language_model._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def _save_pretrained(self, save_directory) -> None:
        super()._save_pretrained(save_directory)
        if self.fusion:
            self.fusion.language_model.save_pretrained(save_directory / LANGUAGE_MODEL)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode(self, source: torch.Tensor, lengths: torch.Tensor):
        """source [B, S] (padded on the right) -> memory [B, S, M], keys, the fixed context c [B, M], the first
        decoder state [B, H] and the padding mask [B, S]."""
        x = dropout(self.embed(source), self.dropout, self.training)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=source.shape[1])
        c = torch.cat(list(final), -1)  # the last state of each direction
        keys = self.key(memory) if self.context == "attention" else None
        mask = torch.arange(source.shape[1], device=source.device)[None] < lengths[:, None].to(source.device)
        return memory, keys, c, torch.tanh(self.bridge(c)), mask

    def step(self, previous: torch.Tensor, state: torch.Tensor, encoded):
        """One decoder step from the previous characters [B]: logits [B, V], the new state, attention [B, S]."""
        memory, keys, c, _, mask = encoded
        weights = None
        if self.context == "attention":
            energy = self.energy(torch.tanh(self.query(state)[:, None] + keys))[..., 0]
            weights = energy.masked_fill(~mask, -torch.inf).softmax(-1)
            c = (weights[..., None] * memory).sum(1)
        x = dropout(self.embed(previous), self.dropout, self.training)
        fed = self.context != "init"
        state = self.decoder(torch.cat([x, c], -1) if fed else x, state)
        out = dropout(torch.cat([state, c], -1) if fed else state, self.dropout, self.training)
        return self.head(out), state, weights

    def forward(self, source: torch.Tensor, lengths: torch.Tensor, previous: torch.Tensor):
        """Teacher forcing: logits [B, T, V] for the characters after previous [B, T], and attention [B, T, S]."""
        encoded = self.encode(source, lengths)
        state, logits, attention = encoded[3], [], []
        for t in range(previous.shape[1]):
            out, state, weights = self.step(previous[:, t], state, encoded)
            logits.append(out)
            attention.append(weights)
        return torch.stack(logits, 1), (torch.stack(attention, 1) if self.context == "attention" else None)

    @staticmethod
    def source(line: str) -> str:
        """The line the model answers (attention's columns): the last non-empty line of the text."""
        if not isinstance(line, str):
            raise BadValue("line", line, "text")
        return next((part for part in reversed(normalize(line).split("\n")) if part), "")

    def source_ids(self, line: str) -> list[int]:
        """The source line's ids; an empty line reads as a line break (where a song starts)."""
        return self.vocab.encode(self.source(line)) or [self.newline]

    def encoded(self, line: str):
        ids = self.source_ids(line)
        return self.encode(torch.tensor([ids], device=self.device), torch.tensor([len(ids)]))

    @torch.inference_mode()
    def score(self, line: str, context: str = "", details: bool = True) -> evaluate.Score:
        """How likely the model finds line (its line break included) as the line after context: the same Score as
        CharRNN.score, fair perplexity and per-character probabilities, ranks and alternatives."""
        if not isinstance(line, str) or "\n" in normalize(line):
            raise BadValue("line", line, "one line of text")
        self.eval()
        text = normalize(line) + "\n"
        targets = torch.tensor(self.vocab.encode(text), device=self.device)
        log_probs, gain, _ = self.read(context, text)
        judge = evaluate.Judge(len(targets), len(self.vocab), self.vocab.unk_id, details, gain)
        judge(log_probs, targets, 0)
        return judge.score(text, self.vocab.itos)

    @torch.inference_mode()
    def read(self, context: str, text: str, fused: bool = True) -> tuple[torch.Tensor, np.ndarray | None,
                                                                        torch.Tensor | None]:
        """The model reading text (its line break included) as the line after context's last line: the
        log-probabilities of each of its characters [T, V], what the count models add to each one outside the
        vocabulary (see evaluate.Judge; None: nothing), and the attention over the line [T, S] (see next_line).
        fused=False: the encoder-decoder alone, even where it is fused."""
        self.eval()
        targets = self.vocab.encode(text)
        previous = torch.tensor([[self.newline] + targets[:-1]], device=self.device)
        ids = self.source_ids(context)
        logits, attention = self(torch.tensor([ids], device=self.device), torch.tensor([len(ids)]), previous)
        if not (self.fusion and fused):
            return logits[0].log_softmax(-1), None, (attention[0] if attention is not None else None)
        primed, rows, seen, gain = self.fusion.read(self.source(context)), [], [], np.zeros(len(text))
        language_model = self.fusion.language_model
        for t, (probs, char) in enumerate(zip(logits[0].softmax(-1), text)):
            mixed, weights = self.fusion.mixed(probs, primed)
            rows.append(mixed)
            seen.append(self.seen(weights, len(ids)))
            if char not in self.vocab:
                gain[t] = self.fusion.shares.cache * primed.outside_gain(weights, char)
                if language_model.count_share:
                    gain[t] += self.fusion.shares.language_model * language_model.outside_gain([primed.last], char)[0]
            primed.read(char)
        return torch.stack(rows).clamp_min(1e-30).log(), gain, torch.stack(seen)

    @staticmethod
    def seen(weights: torch.Tensor, columns: int) -> torch.Tensor:
        """A fused model's attention over the line answered: the cache's weights on the line's own characters
        (each position's state), renormalised over them."""
        on_line = weights[:columns]
        total = on_line.sum()
        return on_line / total if total > 0 else torch.full_like(on_line, 1 / columns)

    def written(self, line: str, temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None,
                seed: int | None = None, max_length: int = limits.NEXT_LINE_LENGTH) -> Iterator[tuple[str, list[float] | None]]:
        """The next line character by character, each with the attention it paid to the line's characters. Bad
        arguments are refused here, before the first character."""
        if not (is_whole(max_length) and max_length >= 1):
            raise BadValue("max_length", max_length, "a positive whole number")
        options = Options(temperature, top_k, top_p, seed)
        check(options, max_length)
        self.source(line)
        return self.decode(line, options, max_length)

    @torch.inference_mode()  # the decorator, not a with-block: gradio may resume the generator on another thread
    def decode(self, line: str, options: Options, max_length: int) -> Iterator[tuple[str, list[float] | None]]:
        self.eval()
        encoded = self.encoded(line)
        state, previous = encoded[3], torch.tensor([self.newline], device=self.device)
        uniforms = Uniforms(options.seed)
        sampler, prior = Sampler(backends.TORCH, [options], None), self.smoothing * self.prior
        primed = self.fusion.read(self.source(line)) if self.fusion else None
        if self.fusion:
            prior = self.fusion.prior(prior)
        for step in range(max_length):
            logits, state, attention = self.step(previous, state, encoded)
            probs = logits.float().softmax(-1)
            if primed:
                mixed, weights = self.fusion.mixed(probs[0], primed)
                probs, attention = mixed[None], self.seen(weights, encoded[0].shape[1])[None]
            weights = without_prior(backends.TORCH, probs, prior, self.vocab.unk_id)
            if not step:
                weights[:, self.newline] = 0  # a next line is never empty: a verse's end is no line
            i = sampler.draw(sampler.shaped(weights), [uniforms.next()])[0]
            if i == self.newline:
                return
            yield self.vocab.itos[i], (attention[0].tolist() if attention is not None else None)
            previous = previous.new_tensor([i])
            if primed:
                primed.read(self.vocab.itos[i])

    def next_line(self, line: str, temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None,
                  seed: int | None = None, max_length: int = limits.NEXT_LINE_LENGTH, attention: bool = False):
        """The line that follows line (without its line break), at most max_length characters. line: a line of
        text (of several, the last non-empty one). With attention=True, also the attention weights
        [len(text)][len(source line)] (every row sums to 1; "init" and "every-step" models have none unless fused;
        a fused model's are its cache's, on the line's characters)."""
        steps = list(self.written(line, temperature, top_k, top_p, seed, max_length))
        text = "".join(char for char, _ in steps)
        if not attention:
            return text
        if not self.attends:
            raise BadValue("attention", attention, f"False: a model with context={self.context!r} has no attention")
        return text, [weights for _, weights in steps]

    @classmethod
    def from_pretrained(cls, source: str, *, revision: str | None = None, cache_dir=None, force_download: bool = False,
                        local_files_only: bool = False, token=None, map_location="cpu") -> "NextLine":
        """A local folder or a Hub repo id, loaded strictly and through safetensors only (never a pickle); with the
        character model it is fused with, if any, from its subfolder."""
        hub = dict(revision=revision, cache_dir=cache_dir, force_download=force_download,
                   local_files_only=local_files_only, token=token)
        model = loading.load_pretrained(cls, str(source), map_location, **hub)
        if any(model.shares):
            language_model = CharRNN.from_pretrained(source, map_location=map_location, subfolder=LANGUAGE_MODEL, **hub)
            try:
                model.fuse(language_model, *model.shares, model.cache_sharpness)
            except ValueError as e:
                raise ModelFileError(f"{source}: its {LANGUAGE_MODEL}/ does not fit it: {e}") from None
        return model


def check_fusion(lm_share, cache_share, sharpness) -> tuple[Shares, float]:
    numbers = (lm_share, cache_share, sharpness)
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers) \
            or min(numbers) < 0 or lm_share + cache_share > 1:
        raise ValueError(f"lm_share and cache_share must each be at least 0 and together at most 1, and "
                         f"cache_sharpness at least 0; got {lm_share!r}, {cache_share!r} and {sharpness!r}")
    return Shares(float(lm_share), float(cache_share)), float(sharpness)
