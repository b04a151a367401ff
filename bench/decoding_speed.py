"""Decoding speed: our one-step decoder against the classic tutorial's predict, and batch against single stream.

python -m bench.decoding_speed   (uses models/jaychou-rnn when trained; speed does not depend on the weights)
"""
import torch
import torch.nn.functional as F

from charrnn import CharRNN

from .common import best_time, default_model, table

LENGTH, BATCH, PREFIX = 500, 64, "分开"


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


def per_char(fn, chars: int, repeats: int = 5) -> float:
    return best_time(fn, repeats) / chars


def main() -> None:
    model = default_model("rnn")
    baseline = tutorial_model(model.vocab)
    tutorial = per_char(lambda: tutorial_predict(baseline, PREFIX, LENGTH), LENGTH, 3)
    rows = [["tutorial net, tutorial predict (greedy)", 1, tutorial * 1e3, 1 / tutorial, 1.0]]
    ours = per_char(lambda: baseline.generate(PREFIX, LENGTH, temperature=0), LENGTH)
    rows.append(["tutorial net, charrnn decoder (greedy)", 1, ours * 1e3, 1 / ours, tutorial / ours])
    for name, temperature in (("greedy", 0.0), ("sampling T=1", 1.0)):
        single = per_char(lambda: model.generate(PREFIX, LENGTH, temperature=temperature, seed=0), LENGTH)
        rows.append([f"jaychou-rnn, charrnn decoder ({name})", 1, single * 1e3, 1 / single, tutorial / single])
        batch = per_char(lambda: model.generate_batch([PREFIX] * BATCH, LENGTH, temperature=temperature, seed=0),
                         LENGTH * BATCH, 3)
        rows.append([f"jaychou-rnn, batch ({name}): {single / batch:.1f}x single stream", BATCH, batch * 1e3,
                     1 / batch, tutorial / batch])
    table(f"Decoding {LENGTH} characters; jaychou-rnn = {model.cell}, hidden {model.rnn.hidden_size}, "
          f"head {model.proj.out_features if model.proj else 0}, vocabulary {len(model.vocab)}",
          ["decoder", "streams", "ms/char", "chars/s", "speed vs tutorial"], rows)


if __name__ == "__main__":
    main()
