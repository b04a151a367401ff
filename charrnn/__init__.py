"""charrnn: character-level RNN language models (from-scratch RNN, RNN, GRU, LSTM) for lyrics and prose."""
from .cells import CELLS
from .loading import ModelFileError
from .model import CharRNN
from .vocab import Vocab

__all__ = ["CELLS", "CharRNN", "ModelFileError", "Vocab"]
