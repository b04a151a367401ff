"""How much of the held-out lyrics the song itself foretells: each lyrics model, and the bigram baseline, mixed with a
cache of the text just read (Kuhn and De Mori's cache model: trigram counts of the last 500 characters, Witten-Bell
interpolated), at the share that scores the held-out text best (chosen as the count weight is).

python -m bench.song_cache   (needs `make models`; a few seconds)

Not shipped: the cache helps the bigram about as much as the networks, so it is no way for a network to beat
counting; and in decoding it would feed on the model's own output.
"""
import math
from collections import Counter
from pathlib import Path

from charrnn import CharRNN
from training.baselines import baselines
from training.data import read_corpus, split
from training.train import DATA_DIR

from .common import table

MODELS = [Path("models") / f"jaychou-{cell}" for cell in ("lstm", "gru", "rnn", "rnn-scratch")]
WINDOW = 500
SHARES = [k / 20 for k in range(20)]


def cache_probabilities(text: str, window: int = WINDOW) -> list[float]:
    """P_cache(text[t] | the `window` characters before it) for t >= 1: unigram, bigram and trigram counts of
    the window, each order interpolated with the one below by Witten-Bell (0 where the window has none)."""
    grams = [Counter(), Counter(), Counter()]  # (), (a,), (a, b) -> counts of what followed
    follows = [Counter(), Counter(), Counter()]  # context -> how many followed it
    kinds = [Counter(), Counter(), Counter()]  # context -> how many different characters followed it

    def count(t: int, change: int) -> None:
        for n in range(3):
            if t - n < 0:
                break
            context, key = text[t - n:t], (text[t - n:t], text[t])
            if change > 0 and grams[n][key] == 0:
                kinds[n][context] += 1
            grams[n][key] += change
            follows[n][context] += change
            if change < 0 and grams[n][key] == 0:
                kinds[n][context] -= 1

    out = []
    for t in range(1, len(text)):
        count(t - 1, 1)
        if t - 1 - window >= 0:
            count(t - 1 - window, -1)
        p = 0.0
        for n in range(3):
            context = text[max(0, t - n):t]
            seen = follows[n][context]
            if seen:
                share = seen / (seen + kinds[n][context])
                p = share * grams[n][context, text[t]] / seen + (1 - share) * p
        out.append(p)
    return out


def with_cache(probs: list[float], cache: list[float]) -> tuple[float, float]:
    """The best perplexity of (1 - s) * probs + s * cache over the shares s, and that share."""
    scores = {s: math.exp(-sum(math.log((1 - s) * p + s * c) for p, c in zip(probs, cache)) / len(probs))
              for s in SHARES}
    share = min(scores, key=scores.get)
    return scores[share], share


def main() -> None:
    train_text, held_out = split(read_corpus(DATA_DIR / "jaychou_lyrics.txt"))
    bigram, _, bigram_ppl = baselines(train_text, held_out)
    cache = cache_probabilities(held_out)
    counted = [bigram.fair_p(c, p) for p, c in bigram.events(held_out[1:], held_out[:1])]
    rows = [["bigram baseline", bigram_ppl, *with_cache(counted, cache)]]
    for folder in MODELS:
        if (folder / "model.safetensors").exists():
            score = CharRNN.from_pretrained(folder).score(held_out[1:], held_out[:1])
            rows.append([folder.name, score.perplexity, *with_cache(score.probs.tolist(), cache)])
    table(f"Held-out lyrics with a cache of the last {WINDOW} characters read (fair perplexity)",
          ["model", "alone", "with the cache", "cache share"],
          [[name, alone, cached, f"{share:.0%}"] for name, alone, cached, share in rows])
    print(f"\nvs the bigram with the same cache: " + ", ".join(f"{r[0]} {r[2] / rows[0][2]:.2f}x" for r in rows[1:]))


if __name__ == "__main__":
    main()
