"""CharRNN: embedding (or one-hot) -> recurrent cell -> linear head, saved and loaded the Hugging Face way."""
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.func import functional_call

from . import decoding, loading
from .cells import dropout, make_cell
from .vocab import Vocab


class CharRNN(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="charrnn",
    tags=["char-rnn", "text-generation", "lyrics"],
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
    ):
        super().__init__()
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

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def stream(self, prefix: str, length: int, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, seed: int | None = None) -> Iterator[str]:
        """The continuation of prefix, one character at a time."""
        itos = self.vocab.itos
        for ids in decoding.decode(self, [prefix], length, temperature, top_k, top_p, seed):
            yield itos[ids[0]]

    def generate(self, prefix: str, length: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None) -> str:
        """The continuation of prefix (without the prefix itself), length characters long."""
        return "".join(self.stream(prefix, length, temperature, top_k, top_p, seed))

    def generate_batch(self, prefixes: list[str], length: int, temperature: float = 1.0, top_k: int | None = None,
                       top_p: float | None = None, seed: int | None = None) -> list[str]:
        """Several continuations decoded together, one per prefix."""
        columns = list(decoding.decode(self, prefixes, length, temperature, top_k, top_p, seed))
        return [self.vocab.decode(row) for row in zip(*columns)] if columns else [""] * len(prefixes)

    @classmethod
    def from_pretrained(cls, source: str, *, revision: str | None = None, cache_dir=None, force_download: bool = False,
                        local_files_only: bool = False, token=None, map_location="cpu") -> "CharRNN":
        """A local folder or a Hub repo id, loaded strictly and through safetensors only (never a pickle).

        Downloads go through huggingface_hub's cache (revision, cache_dir, local_files_only, HF_HUB_OFFLINE).
        """
        source = str(source)
        loading.check_source(source)
        hub = dict(revision=revision, cache_dir=cache_dir, force_download=force_download,
                   local_files_only=local_files_only, token=token)
        config = loading.read_config(source, loading.fetch(source, loading.CONFIG_NAME, **hub), cls)
        weights = loading.fetch(source, loading.WEIGHTS_NAME, **hub)
        model = cls(**config)
        loading.load_weights(model, weights, map_location)
        return model.eval()
