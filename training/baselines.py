"""Count-based baselines scored on the same split, by the same fair rule as the models."""
from charrnn.counts import Bigram


def baselines(train: str, val: str, newlines: str = "keep") -> tuple[Bigram, float, float]:
    """The bigram counted on train (its weight tuned on val), and the unigram and bigram perplexities of val[1:]."""
    bigram = Bigram.count(train, newlines).tune(val)
    rest, first = val[1:], val[:1]
    return bigram, bigram.score(rest, first, weight=0.0).perplexity, bigram.score(rest, first).perplexity
