"""CharRNN: embedding (or one-hot) -> recurrent cell -> linear head, saved and loaded the Hugging Face way."""
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from . import decoding, loading
from .cells import make_cell
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
    ):
        super().__init__()
        self.vocab = Vocab.from_dict(vocab)
        self.cell, self.one_hot = cell, one_hot
        vocab_size = len(self.vocab)
        self.embed = None if one_hot else nn.Embedding(vocab_size, embed_size)
        self.rnn = make_cell(cell, vocab_size if one_hot else embed_size, hidden_size, num_layers, dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def features(self, ids: torch.Tensor, state=None):
        """The top layer's outputs [B, T, H] and the final state, before the output layer."""
        x = F.one_hot(ids, len(self.vocab)).float() if self.one_hot else self.embed(ids)
        out, state = self.rnn(self.drop(x), state)
        return self.drop(out), state

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
        for ids in decoding.decode(self, [prefix], length, temperature, top_k, top_p, seed):
            yield self.vocab.itos[ids[0]]

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
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs):
        """Strict, safetensors-only loading with errors that name the problem (never a pickle)."""
        if not strict:
            raise ValueError("CharRNN loads strictly: every weight must be present and match config.json")
        weights = loading.fetch(model_id, loading.WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
                                force_download=force_download, local_files_only=local_files_only, token=token)
        model = cls(**loading.checked_config(model_id, model_kwargs))
        loading.load_weights(model, weights, map_location)
        return model.eval()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "CharRNN":
        """A local folder or a Hub repo id (revision=, cache_dir=, local_files_only=, token= as in huggingface_hub)."""
        loading.check_source(str(pretrained_model_name_or_path), **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
