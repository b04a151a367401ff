"""A mixture's shares fitted on held-out text: from each part's probability of every held-out character, the shares on
a grid whose mixture scores that text best (a character model's count models, a next-line model's fusion)."""
import itertools

import numpy as np

COUNT_WEIGHTS = [k / 20 for k in range(20)]  # each part's shares tried


def mixture_nll(network: np.ndarray, counts: list[np.ndarray], shares) -> float:
    """The negative log-likelihood of a mixture, from each part's probability of every held-out character: the
    network has what the counts' shares leave."""
    return -np.log((1 - sum(shares)) * network + sum(w * c for w, c in zip(shares, counts))).sum()


def best_shares(network: np.ndarray, *counts: np.ndarray) -> tuple[float, ...]:
    """The shares of the other parts (a character model's count models), each on COUNT_WEIGHTS and together below 1,
    whose mixture with the network scores best, from each part's probability of every held-out character."""
    grid = [s for s in itertools.product(COUNT_WEIGHTS, repeat=len(counts)) if sum(s) < 1 - 1e-9]
    return min(grid, key=lambda shares: mixture_nll(network, list(counts), shares))
