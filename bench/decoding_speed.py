"""Decoding speed: our one-step decoder against the classic tutorial's predict, and batch against single stream.

python -m bench.decoding_speed   (uses models/jaychou-rnn when trained; speed does not depend on the weights; the
                                  mixture table needs models/jaychou-lstm)
Every setup runs once per round, taking turns for ROUNDS rounds; each keeps its best round.
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from charrnn import CharRNN

from .common import best_rates, default_model, table

LENGTH, BATCH, PREFIX, ROUNDS = 500, 64, "分开", 8
MODES = {"greedy": 0.0, "sampling T=1": 1.0, "sampling T=0.8 (the app's default)": 0.8}


def tutorial_model(vocab) -> CharRNN:
    """The tutorial's network: one-hot input, nn.RNN with 256 hidden units, a linear output layer."""
    return CharRNN(vocab.to_dict(), cell="rnn", hidden_size=256, one_hot=True).eval()


@torch.no_grad()
def tutorial_predict(model: CharRNN, prefix: str, length: int) -> str:
    """The tutorial's greedy predict: the network called on one one-hot character at a time."""
    ids, state = model.vocab.encode(prefix), None
    outputs = [ids[0]]
    for i in range(len(ids) - 1 + length):
        x = F.one_hot(torch.tensor([[outputs[-1]]]), len(model.vocab)).float()
        y, state = model.rnn(x, state)
        outputs.append(ids[i + 1] if i + 1 < len(ids) else int(model.head(y).argmax(-1)))
    return model.vocab.decode(outputs[len(ids):])


def main() -> None:
    model = default_model("rnn")
    baseline = tutorial_model(model.vocab)
    setups = {("tutorial net, tutorial predict (greedy)", 1): lambda r: len(tutorial_predict(baseline, PREFIX, LENGTH)),
              ("tutorial net, charrnn decoder (greedy)", 1): lambda r: len(baseline.generate(PREFIX, LENGTH, 0.0))}
    for name, t in MODES.items():
        setups[name, 1] = lambda r, t=t: len(model.generate(PREFIX, LENGTH, t, seed=r))
        setups[name, BATCH] = lambda r, t=t: sum(map(len, model.generate_batch([PREFIX] * BATCH, LENGTH, t, seed=r)))
    rates = best_rates(setups, ROUNDS)

    tutorial = rates["tutorial net, tutorial predict (greedy)", 1]
    rows = []
    for (name, streams), rate in rates.items():
        if streams > 1:
            label = f"  batch: {rate / rates[name, 1]:.1f}x one stream"
        else:
            label = name if name.startswith("tutorial") else f"jaychou-rnn, {name}"
        rows.append([label, streams, 1e3 / rate, round(rate), rate / tutorial])
    table(f"Decoding {LENGTH} characters, best of {ROUNDS} rounds; jaychou-rnn = {model.cell}, hidden "
          f"{model.rnn.hidden_size}, head {model.proj.out_features if model.proj else 0}, vocabulary {len(model.vocab)}",
          ["decoder", "streams", "ms/char", "chars/s", "speed vs tutorial"], rows)
    mixture_table()


def mixture_table() -> None:
    """The cost of mixing the count model in: the trained LSTM against its own network alone."""
    folder = Path("models/jaychou-lstm")
    if not (folder / "model.safetensors").exists():
        print("\n(no models/jaychou-lstm: train it for the mixture's table)")
        return
    mixed = CharRNN.from_pretrained(folder)
    alone = CharRNN.from_pretrained(folder).mix_counts(None, 0.0)
    setups = {}
    for name, model in (("network alone", alone), (f"mixed ({mixed.count_share:.0%} counts)", mixed)):
        setups[name, 1] = lambda r, m=model: len(m.generate(PREFIX, LENGTH, 0.8, seed=r))
        setups[name, BATCH] = lambda r, m=model: sum(map(len, m.generate_batch([PREFIX] * BATCH, LENGTH, 0.8, seed=r)))
    rates = best_rates(setups, ROUNDS)
    table(f"Decoding {LENGTH} characters at T=0.8, jaychou-lstm, best of {ROUNDS} rounds",
          ["model", "streams", "ms/char", "time vs network alone"],
          [[name, streams, 1e3 / rate, rates["network alone", streams] / rate] for (name, streams), rate in rates.items()])


if __name__ == "__main__":
    main()
