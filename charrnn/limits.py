"""Every limit of a request, defined once: the library's checks, the page's sliders, the CLI's help and the API's
docs all read them from here, so they cannot disagree."""
from typing import NamedTuple


def shown(x: float) -> str:
    return f"{int(x):,}" if x == int(x) else f"{x:g}"


class Range(NamedTuple):
    """The values an option may take, both ends included."""
    low: float
    high: float

    def __str__(self) -> str:
        return f"{shown(self.low)} to {shown(self.high)}"

    def __contains__(self, value) -> bool:
        return self.low <= value <= self.high


LENGTH = Range(1, 1000)  # characters one request writes
TEXT = 100_000  # characters of any text a request sends: a prefix, a start, a text to score or its context
PREFIX = 2000  # characters of a prefix a model reads: a longer one keeps its end (the state forgets far-back text)
LINES = Range(0, 100)  # 0: no limit
ACROSTIC = 50  # characters, one line each
RHYME = 40  # characters of a rhyme: a group, a character or an English word
LINE_LENGTH = Range(1, 50)  # characters (Chinese) or syllables (English) of a line of a melody's pattern
PATTERN = 100  # line lengths in a pattern
SCHEME = 200  # characters of a rhyme scheme, its given rhymes included
KEYWORDS = 5  # words a lyric must hold
KEYWORD = 20  # characters of a keyword
CANDIDATES = Range(1, 16)
REWRITES = Range(1, 4)  # rewrites of a lyric one request writes
SEED = Range(0, 2**32 - 1)
TEMPERATURE = Range(0, 2)  # 0 is greedy
TOP_P = Range(0.01, 1)  # 1 is off
REPETITION_PENALTY = Range(1, 3)  # 1 is off
NO_REPEAT_NGRAM = Range(0, 12)  # 0 is off
LINE = 500  # characters of the line a next-line model answers
TRAINING_TEXT = Range(2_000, 5_000_000)  # characters of a text to train on (fewer: too little to hold out a part)
TRAINING_BYTES = 20_000_000  # bytes of an uploaded text file (5,000,000 characters of Chinese in UTF-8 are 15 MB)
NEXT_LINE_LENGTH = 40  # characters a next-line model writes (the lyrics' longest line has 34)
TRAINING_MINUTES = Range(0.25, 10)  # a training's time budget in the page and the API
TRAINED_ZIP_BYTES = 200_000_000  # bytes of a trained folder uploaded as a zip, unpacked (a large model is ~20 MB)
PASTED_TRAINING_TEXT = 1_000_000  # characters of a text pasted in the page or sent to /train (a larger one: upload it)
UPLOAD_BYTES = 50_000_000  # bytes of a file the page takes (a text to train on, a trained model's zip)
LEARNING_RATE = Range(1e-5, 0.1)  # the page's and /train's training options
BATCH_SIZE = Range(1, 256)
SEQUENCE_LENGTH = Range(4, 256)
DROPOUT = Range(0, 0.9)
NAME = 60  # characters of a trained model's name in the page
REPO_NAME = 96  # characters of a Hub repo's name
TOKEN = 200  # characters of a Hub token pasted in the page
ZERO_GPU_MINUTES = 4.0  # the longest budget on ZeroGPU: a GPU is lent for about 5 minutes at most
TRAINED_PARAMETERS = 50_000_000  # parameters of a trained model an uploaded zip may hold (the page's large: ~4 M)
TRAINED_PER_SESSION = 3  # trained models a session keeps: a fourth replaces the oldest
TRAINED_IN_ALL = 60  # trained models the server keeps for every session together: the oldest go first
TRAININGS_WAITING = 8  # trainings in line at most
KEEP_AFTER_SESSION = 3600  # seconds a session's trained models stay after it ends (its tab closed)
KEEP_LONGEST = 24 * 3600  # seconds any trained model stays, its session ended or not (an API client never says)
