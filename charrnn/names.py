"""What the variants and their files are called, spelled once: each cell's and corpus's readable name, and the
files of a trained folder beside its weights."""
CELL_NAMES = {"rnn-scratch": "RNN (from scratch)", "rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
KIND_NAMES = {**CELL_NAMES, "next-line": "next line (encoder-decoder)"}
CORPUS_NAMES = {"jaychou": "Jay Chou lyrics", "timemachine": "The Time Machine"}  # by the corpus file's stem
METRICS_NAME = "metrics.json"  # what training measured: held-out perplexity, baselines, the run


def base_name(source: str) -> str:
    """'models/jaychou-lstm' or 'user/charrnn-jaychou-lstm' -> 'Jay Chou lyrics · LSTM'."""
    stem = source.rstrip("/").split("/")[-1].removeprefix("charrnn-")
    corpus, _, cell = stem.partition("-")
    if corpus in CORPUS_NAMES and cell in KIND_NAMES:
        return f"{CORPUS_NAMES[corpus]} · {KIND_NAMES[cell]}"
    return stem
