"""Count-based baselines scored on the same split, by the same fair rule as the models."""
import math
from collections import Counter

from charrnn.evaluate import OOV_PENALTY


def unigram_bigram_perplexity(train: str, val: str) -> tuple[float, float]:
    """Perplexity of val[1:] under a unigram and an interpolated bigram, both counted on train.

    Every training character is in the baselines' vocabulary; the rest share one <unk> slot whose
    probability is the Witten-Bell estimate of meeting a new character, and which pays OOV_PENALTY.
    The bigram's interpolation weight is chosen on val itself: an optimistic, hard-to-beat baseline.
    """
    uni = Counter(train)
    total, kinds = sum(uni.values()), len(uni)
    p_unk = kinds / (total + kinds)

    def p_uni(c):
        return uni[c] / (total + kinds) if c in uni else p_unk

    pairs = Counter(zip(train, train[1:]))
    follows = Counter(train[:-1])
    events = list(zip(val, val[1:]))
    uni_nll = sum(-math.log(p_uni(c)) + (c not in uni) * OOV_PENALTY for _, c in events)

    def bigram_nll(lam):
        nll = 0.0
        for p, c in events:
            ml = pairs[p, c] / follows[p] if follows[p] else 0.0
            nll += -math.log(lam * ml + (1 - lam) * p_uni(c)) + (c not in uni) * OOV_PENALTY
        return nll

    best = min(bigram_nll(lam / 20) for lam in range(1, 20))
    return math.exp(uni_nll / len(events)), math.exp(best / len(events))
