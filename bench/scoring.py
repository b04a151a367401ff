"""Scoring speed: model.score with every character's details, against the trainer's validation pass (the same
function without details) on the same text in the same run; one model, then all five; and the memory a
100,000-character score takes.

python -m bench.scoring   (needs make models; the setups take turns for ROUNDS rounds and keep their best)
"""
import subprocess
import sys
from pathlib import Path

from charrnn import CharRNN
from training.data import read_corpus

from .common import JAYCHOU, best_rates, table

LENGTH, ROUNDS = 100_000, 3
VARIANTS = ["jaychou-lstm", "jaychou-gru", "jaychou-rnn", "jaychou-rnn-scratch", "timemachine-lstm"]
MEMORY = """
import sys
from charrnn import CharRNN
from training.data import read_corpus
def peak():  # kB: the most this process has held
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
model = CharRNN.from_pretrained(sys.argv[1])
text = (read_corpus(sys.argv[2]) * 2)[:int(sys.argv[3])]
model.score(text[:2000])  # warm-up: torch's own buffers
before = peak()
score = model.score(text)
print(peak() - before, score.probs.nbytes + score.ranks.nbytes + score.alt_ids.nbytes + score.alt_probs.nbytes)
"""


def main() -> None:
    text = (read_corpus(JAYCHOU) * 2)[:LENGTH]
    models = {name: CharRNN.from_pretrained(Path("models") / name) for name in VARIANTS}
    lstm = models["jaychou-lstm"]
    setups = {
        "jaychou-lstm, validation pass (no details)": lambda r: lstm.score(text, details=False).count,
        "jaychou-lstm, score with details": lambda r: lstm.score(text).count,
        "all five, validation pass": lambda r: sum(m.score(text, details=False).count for m in models.values()),
        "all five, score with details": lambda r: sum(m.score(text).count for m in models.values()),
    }
    rates = best_rates(setups, ROUNDS)
    names = list(rates)
    rows = [[name, round(rate), rates[names[0 if name.startswith("jaychou") else 2]] / rate]
            for name, rate in rates.items()]
    table(f"Scoring {LENGTH:,} characters, best of {ROUNDS} alternating rounds",
          ["setup", "characters/s", "time vs the validation pass"], rows)

    done = subprocess.run([sys.executable, "-c", MEMORY, "models/jaychou-lstm", str(JAYCHOU), str(LENGTH)],
                          capture_output=True, text=True, check=True)
    grown, kept = map(int, done.stdout.split())
    table(f"Memory of scoring {LENGTH:,} characters with details (jaychou-lstm, a fresh process)",
          ["what", "MB"], [["peak growth of the process", grown / 1024], ["the Score kept (its arrays)", kept / 2**20]])


if __name__ == "__main__":
    main()
