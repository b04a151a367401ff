"""charrnn: character-level RNN language models (from-scratch RNN, RNN, GRU, LSTM) for lyrics and prose."""
from .cells import CELLS
from .form import Candidate, Options, Step
from .errors import ModelFileError, OptionError
from .model import CharRNN
from .next_line import NextLine
from .vocab import Vocab

__all__ = ["CELLS", "Candidate", "CharRNN", "ModelFileError", "NextLine", "OptionError", "Options", "Step", "Vocab"]
