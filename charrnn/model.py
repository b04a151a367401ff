"""CharRNN: embedding (or one-hot) -> recurrent cell -> linear head, saved and loaded the Hugging Face way."""
import math
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.func import functional_call

from . import decoding, evaluate, limits, loading, song
from .cells import dropout, make_cell
from .counts import BIGRAM_NAME, Bigram
from .errors import BadValue, EmptyText
from .lexicon import LEXICON_NAME, Lexicon
from .form import Candidate, Options, Rhymes, Sequence, Step, check, is_whole
from .vocab import Vocab, normalize


class CharRNN(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="charrnn",
    tags=["char-rnn", "text-generation"],
    pipeline_tag="text-generation",
    license="mit",
):
    def __init__(
        self,
        vocab: dict,
        cell: str = "lstm",
        embed_size: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        one_hot: bool = False,
        head_size: int = 0,
        embed_dropout: float = 0.0,
        weight_drop: float = 0.0,
        smoothing: float = 0.0,
        count_weight: float = 0.0,
        lexicon_weight: float = 0.0,
    ):
        super().__init__()
        check_shares(count_weight, lexicon_weight)
        self.vocab = Vocab.from_dict(vocab)
        self.cell, self.one_hot = cell, one_hot
        self.embed_dropout, self.weight_drop, self.smoothing = embed_dropout, weight_drop, smoothing
        vocab_size = len(self.vocab)
        self.embed = None if one_hot else nn.Embedding(vocab_size, embed_size)
        self.rnn = make_cell(cell, vocab_size if one_hot else embed_size, hidden_size, num_layers, dropout)
        self.dropout = dropout
        # An optional bottleneck before the output layer: fewer weights to overfit, and a cheaper decoding step.
        self.proj = nn.Linear(hidden_size, head_size, bias=False) if head_size else None
        self.head = nn.Linear(head_size or hidden_size, vocab_size)
        # The distribution label smoothing spread `smoothing` of each target over; decoding removes it again.
        self.register_buffer("prior", torch.full((vocab_size,), 1 / vocab_size))
        # The model's probabilities: the network's mixed with count models', the bigram of the training text at
        # count_weight (Mikolov's RNNLM mixed its network with an n-gram the same way) and the language's words at
        # lexicon_weight (a Lexicon of its word-frequency list).
        self.count_weight, self.counts = count_weight, None
        self.lexicon_weight, self.lexicon = lexicon_weight, None
        self.count_tables = {}  # the count models as one table, made on first use: count_table and count_part

    def features(self, ids: torch.Tensor, state=None):
        """What the output layer reads [B, T, head_size or H], and the final state."""
        x = dropout(self.inputs(ids), self.dropout, self.training)
        if self.training and self.weight_drop:
            out, state = functional_call(self.rnn, self.dropped_recurrent_weights(), (x, state))
        else:
            out, state = self.rnn(x, state)
        out = dropout(out, self.dropout, self.training)
        return (self.proj(out) if self.proj else out), state

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        if self.one_hot:
            return F.one_hot(ids, len(self.vocab)).float()
        if self.training and self.embed_dropout:  # drop whole characters, the same everywhere in the batch
            keep = dropout(torch.ones_like(self.embed.weight[:, :1]), self.embed_dropout, True)
            return F.embedding(ids, self.embed.weight * keep)
        return self.embed(ids)

    def dropped_recurrent_weights(self) -> dict[str, torch.Tensor]:
        """DropConnect on the hidden-to-hidden weights, as in AWD-LSTM."""
        return {name: dropout(w, self.weight_drop, True) if name.split(".")[-1].startswith(("weight_hh", "W_hh")) else w
                for name, w in self.rnn.named_parameters()}

    def forward(self, ids: torch.Tensor, state=None):
        """ids: LongTensor [B, T] -> logits [B, T, V] and the state to carry on with."""
        out, state = self.features(ids, state)
        return self.head(out), state

    def log_probs(self, ids: torch.Tensor, state=None, count_rows: torch.Tensor | None = None):
        """The model's log-probabilities of each next character [B, T, V] (the network mixed with its count
        models), and the state to carry on with: what scoring reads. count_rows [B, T, V]: the count models' rows
        where they are not those of the ids (after a character outside the vocabulary, read as <unk>)."""
        logits, state = self(ids, state)
        return self.with_counts(logits, ids, count_rows), state

    def with_counts(self, logits: torch.Tensor, ids: torch.Tensor, count_rows: torch.Tensor | None = None):
        """The model's log-probabilities from the network's logits after ids (see log_probs)."""
        if not self.count_share:
            return logits.log_softmax(-1)
        rows = self.count_table(logits.device)[ids] if count_rows is None else count_rows
        return ((1 - self.count_share) * logits.softmax(-1) + self.count_share * rows).log()

    @property
    def smoothing_mass(self) -> torch.Tensor:
        """The label-smoothing mass in the model's distribution [V], which decoding takes back out (see prior)."""
        return self.prior * self.smoothing * (1 - self.count_share)

    @property
    def count_share(self) -> float:
        """The count models' share of every probability, the bigram's and the lexicon's together."""
        return self.count_weight + self.lexicon_weight

    def count_parts(self) -> list:
        """(share, count model) of each count model mixed in."""
        if (self.count_weight and self.counts is None) or (self.lexicon_weight and self.lexicon is None):
            raise ValueError("this model mixes in a count model (count_weight or lexicon_weight > 0) but has none: "
                             "load it with from_pretrained, or give it one with mix_counts")
        return [(w, part) for w, part in ((self.count_weight, self.counts), (self.lexicon_weight, self.lexicon)) if w]

    def count_rows(self, previous: list[str]) -> torch.Tensor:
        """The count models together after each of the characters previous [len(previous), V], on the model's
        device. They read the character itself, even outside the vocabulary: a character of the vocabulary has its
        row of count_table, only the others' rows are made."""
        ids = torch.tensor([self.vocab.stoi.get(c, self.vocab.unk_id) for c in previous], dtype=torch.long)
        rows = self.count_table(self.device)[ids.to(self.device)]
        outside = (ids == self.vocab.unk_id).nonzero()[:, 0].tolist()
        if outside:
            rows[outside] = self.made_rows([previous[k] for k in outside]).to(self.device)
        return rows

    def made_rows(self, previous: list[str | None]) -> torch.Tensor:
        """count_rows made from the count models themselves, each at its share of count_share (None: a character
        not known)."""
        return sum(w * part.rows(self.vocab, previous) for w, part in self.count_parts()) / self.count_share

    def count_table(self, device) -> torch.Tensor:
        """The count rows after each id, P(next id | previous id) [V, V] (after <unk>: a character not known),
        made once per device."""
        if device not in self.count_tables:
            self.count_tables[device] = self.made_rows([None, *self.vocab.chars]).to(device)
        return self.count_tables[device]

    def count_part(self, device) -> torch.Tensor:
        """count_table times count_share: the count models' part of each row of the mixture, made once per device and
        shared by every decoding batch (a batch made per request, as Compare's are, would make a [V, V] copy)."""
        if (device, "part") not in self.count_tables:
            self.count_tables[device, "part"] = self.count_table(device) * self.count_share
        return self.count_tables[device, "part"]

    def outside_gain(self, previous: list[str], chars: str) -> np.ndarray:
        """What the count models add to the fair probability of characters outside the vocabulary (chars, after
        the characters previous): each gives such a character its own probability of it, where the mixture's <unk>
        column gives it a 10,000th of theirs (the network, which knows no such character, keeps its 10,000th)."""
        own = sum(w * part.outside_probs(self.vocab, previous, chars) for w, part in self.count_parts())
        share = self.count_rows(previous)[:, self.vocab.unk_id].double().cpu().numpy()
        return own - self.count_share * share * math.exp(-evaluate.OOV_PENALTY)

    def mix_counts(self, counts: Bigram | None, weight: float, lexicon: Lexicon | None = None,
                   lexicon_weight: float = 0.0) -> "CharRNN":
        """Mix the bigram counts in with the share weight of every probability and the lexicon with lexicon_weight
        (0: none); saved with the model (bigram.safetensors, lexicon.safetensors, the shares in config.json)."""
        check_shares(weight, lexicon_weight)
        if (weight and counts is None) or (lexicon_weight and lexicon is None):
            raise ValueError("a count model's share needs the count model: got a share without it")
        self.counts, self.count_weight, self.lexicon, self.lexicon_weight = counts, weight, lexicon, lexicon_weight
        self.count_tables = {}  # the table mixes the two at their shares
        # what config.json says
        self._hub_mixin_config = {**self._hub_mixin_config, "count_weight": weight, "lexicon_weight": lexicon_weight}
        return self

    def with_characters(self, chars) -> "CharRNN":
        """A copy of the network whose vocabulary also has `chars` (to fine-tune it on a text with characters it has
        not seen). It writes and scores as the original does: each known character keeps its rows, and a new one
        starts as <unk> (which is how the original read it) with an equal part of <unk>'s probability. The count
        models are not carried over: they belong to the text they were counted on, and fine-tuning counts anew."""
        if self.one_hot:
            raise ValueError("a one-hot model's vocabulary cannot grow: its recurrent layer reads the vocabulary")
        new = [c for c in dict.fromkeys(normalize("".join(chars), self.vocab.newlines)) if c not in self.vocab]
        vocab = Vocab(self.vocab.chars + new, self.vocab.newlines)
        grown = CharRNN(**{**self._hub_mixin_config, "vocab": vocab.to_dict(), "count_weight": 0.0,
                           "lexicon_weight": 0.0}).to(self.device)
        source = torch.tensor([self.vocab.stoi.get(c, self.vocab.unk_id) for c in vocab.itos], device=self.device)
        as_unk = (source == self.vocab.unk_id).sum()  # <unk> and the new characters, which share its probability
        state = self.state_dict()  # the rows below are new tensors; load_state_dict copies the rest
        state["embed.weight"] = state["embed.weight"][source]
        state["head.weight"] = state["head.weight"][source]
        state["head.bias"] = state["head.bias"][source] - torch.where(source == self.vocab.unk_id, as_unk.log(), 0)
        state["prior"] = state["prior"][source] / torch.where(source == self.vocab.unk_id, as_unk, 1)
        grown.load_state_dict(state)
        return grown.train(self.training)

    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        if self.counts is not None:
            self.counts.save(save_directory / BIGRAM_NAME)
        if self.lexicon is not None:
            self.lexicon.save(save_directory / LEXICON_NAME)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def score(self, text: str, context: str = "", details: bool = True) -> evaluate.Score:
        """How likely the model finds text given context (which primes the state and is not scored): fair
        perplexity, total negative log-likelihood and, with details, each character's probability, rank and
        the five characters it expected most instead."""
        return evaluate.score(self, text, context, details)

    @cached_property
    def rhymes(self) -> Rhymes:
        """The model's rhyme scheme (Chinese or English, from its vocabulary) and each rhyme's line endings."""
        return Rhymes(self.vocab)

    def stream(self, prefix: str, length: int, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, seed: int | None = None, *, details: bool = False, scored: bool = False,
               **form) -> Iterator[str] | Iterator[Step]:
        """The continuation of prefix, character by character (Steps with details=True: each character's
        probability and the five likeliest others); with scored=True the generator returns its Candidate (the
        text and its log-probability under the model). form: lines, acrostic, rhyme, repetition_penalty,
        no_repeat_ngram, line_lengths, scheme, keywords, keywords_in_order (see generate). Bad options raise
        ValueError here, before the first piece."""
        options = Options(temperature, top_k, top_p, seed, **form)
        return decoding.pieces(decoding.Batch(self, [prefix], length, [options], details, scored))

    def generate(self, prefix: str, length: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, lines: int | None = None,
                 acrostic: str | None = None, rhyme: str | None = None, repetition_penalty: float = 1.0,
                 no_repeat_ngram: int = 0, line_lengths: str | tuple[int, ...] | None = None, scheme: str | None = None,
                 keywords: str | tuple[str, ...] | None = None, keywords_in_order: bool = False) -> str:
        """The continuation of prefix (without the prefix itself), at most length characters.

        lines: stop after that many line breaks. acrostic: one line per character, each beginning with it
        (on a new line). rhyme: "auto" (the prefix's last line, else the first line written), a rhyme group
        (十三辙, e.g. "江阳", or one of its characters) or an English word: every line ends in it.
        line_lengths: a melody's pattern, "7,7,5,7": each line's sung characters (Chinese: punctuation and spaces
        do not count) or syllables (English), repeated where there are more lines (one verse of it without lines);
        the lines decide the lyric's end, so length is raised to what they need (up to 1,000 characters).
        scheme: "AABB", "ABAB", "XAXA" (X: free), lines of a letter ending in one rhyme, each letter's set by its
        first line or given ("AABB A=江阳"; English: "A=time"). keywords: "雨, 回忆", up to 5 words the lyric holds,
        each once (keywords_in_order: in that order). repetition_penalty: CTRL's penalty on characters already used
        (1 = off). no_repeat_ngram: no n-gram of that size twice.
        """
        return "".join(self.stream(prefix, length, temperature, top_k, top_p, seed, lines=lines, acrostic=acrostic,
                                   rhyme=rhyme, repetition_penalty=repetition_penalty, no_repeat_ngram=no_repeat_ngram,
                                   line_lengths=line_lengths, scheme=scheme, keywords=keywords,
                                   keywords_in_order=keywords_in_order))

    def generate_batch(self, prefixes: list[str], length: int, temperature: float = 1.0, top_k: int | None = None,
                       top_p: float | None = None, seed: int | None = None, **form) -> list[str]:
        """Several continuations decoded together, one per prefix (sequence i seeded with seed + i)."""
        return [c.text for c in self.decode_together(prefixes, length, temperature, top_k, top_p, seed, **form)]

    def candidates(self, prefix: str, n: int, length: int, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, seed: int | None = None, **form) -> list[Candidate]:
        """n continuations (n <= 16) decoded together as one batch, best first by mean log-probability under
        the model. Candidate i is seeded with seed + i, so one of them is what generate writes with that seed."""
        if not (is_whole(n) and n in limits.CANDIDATES):
            raise BadValue("n", n, f"a whole number from {limits.CANDIDATES}")
        found = self.decode_together([prefix] * n, length, temperature, top_k, top_p, seed, scored=True, **form)
        return sorted(found, key=lambda c: -c.mean_logprob)

    def rewrite(self, lyric: str, keep, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                seed: int | None = None, candidates: int = song.REWRITE_CANDIDATES, propose=None, next_line=None,
                **form) -> str:
        """lyric with the lines keep names (line numbers, 1 for the first: [1, 3] or "1,3") as they are and the
        others written anew, so that the song reads as one: a line before a kept line is chosen among `candidates`
        by how likely the model finds the kept line after it, a line after it is written after it. form: acrostic,
        line_lengths, scheme (or rhyme), keywords, keywords_in_order, repetition_penalty, no_repeat_ngram, as in
        generate, over the whole lyric (line i of the lyric has the pattern's line i). propose: how the candidates
        are decoded, called as self.candidates is (a server passes its decoding loop's). next_line: a next-line
        model (a NextLine, or a function of the line before and a seed that writes the line after it) whose lines join
        each run's candidates, half as many, wherever the run has no form only this model's decoder keeps (line
        lengths, a scheme or rhyme, keywords, an acrostic); all are weighed alike, by this model."""
        if not isinstance(lyric, str) or not lyric.strip():
            raise EmptyText("lyric")
        if lyric.count("\n") >= limits.LINES.high:
            raise BadValue("lyric", lyric, f"a lyric of at most {limits.LINES.high} lines")
        kept = song.kept_lines(keep, lyric.count("\n") + 1)
        options = dict(temperature=temperature, top_k=top_k, top_p=top_p, **form)
        check(Options(**options), 0)  # the request's own options, in its own terms, before each run's
        if form.get("rhyme") not in (None, "auto"):
            self.rhymes.resolve(form["rhyme"], "")
        if not (is_whole(candidates) and candidates in limits.CANDIDATES):
            raise BadValue("candidates", candidates, f"a whole number from {limits.CANDIDATES}")

        decode = propose or self.candidates
        from .next_line import NextLine  # it reads character models: a circular import at the top

        write_line = next_line
        if isinstance(next_line, NextLine):
            def write_line(line: str, line_seed: int | None) -> str:
                return next_line.next_line(line, temperature, top_k, top_p, line_seed)
        elif isinstance(next_line, nn.Module) or not (next_line is None or callable(next_line)):
            raise BadValue("next_line", next_line, "a NextLine, a function (line, seed) -> line, or None")

        def run(context: str, run_options: dict, run_seed: int | None) -> list[Candidate]:
            found = decode(context, candidates, limits.LENGTH.high, seed=run_seed, **run_options)
            if write_line is None:
                return found
            lines = song.chained(write_line, context, run_options["lines"], max(1, candidates // 2), run_seed,
                                 run_options)
            found += [Candidate(text, -self.score(text, context, details=False).nll) for text in lines]
            return sorted(found, key=lambda c: -c.mean_logprob)

        def check_run(run_options: dict) -> None:
            Sequence(self, "", limits.LENGTH.high, Options(**run_options))

        return song.rewrite(lyric, kept, options, seed, self.rhymes.scheme.language, run,
                            lambda text, context: -self.score(text, context, details=False).nll, check_run)

    def decode_together(self, prefixes: list[str], length: int, temperature: float, top_k: int | None,
                        top_p: float | None, seed: int | None, scored: bool = False, **form) -> list[Candidate]:
        """Decode prefixes as one batch, sequence i seeded with seed + i: each one's text (and log-probability
        when scored)."""
        seeds = [seed + i if isinstance(seed, int) else seed for i in range(len(prefixes))]
        options = [Options(temperature, top_k, top_p, s, **form) for s in seeds]
        batch = decoding.Batch(self, prefixes, length, options, scored=scored)
        for _ in batch:
            pass
        return batch.candidates()

    @classmethod
    def from_pretrained(cls, source: str, *, revision: str | None = None, cache_dir=None, force_download: bool = False,
                        local_files_only: bool = False, token=None, map_location="cpu",
                        subfolder: str | None = None) -> "CharRNN":
        """A local folder or a Hub repo id (its subfolder, if given), loaded strictly and through safetensors only
        (never a pickle).

        Downloads go through huggingface_hub's cache (revision, cache_dir, local_files_only, HF_HUB_OFFLINE).
        """
        hub = dict(revision=revision, cache_dir=cache_dir, force_download=force_download,
                   local_files_only=local_files_only, token=token, subfolder=subfolder)
        model = loading.load_pretrained(cls, str(source), map_location, **hub)
        if model.count_weight:
            model.counts = loading.load_counts(str(source), **hub)
        if model.lexicon_weight:
            model.lexicon = loading.load_lexicon(str(source), **hub)
        return model


def check_shares(count_weight, lexicon_weight) -> None:
    shares = (count_weight, lexicon_weight)
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in shares) or sum(shares) >= 1:
        raise ValueError(f"count_weight and lexicon_weight must each be at least 0 and together below 1, got "
                         f"{count_weight!r} and {lexicon_weight!r}")
