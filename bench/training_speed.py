"""Training speed at the same model size (nn.RNN, 256 hidden): the classic tutorial setup against our defaults.

python -m bench.training_speed   (a warm-up epoch each, then the best of 4 alternating epochs of the Jay Chou text)
"""
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from charrnn import CharRNN, Vocab
from training.data import random_batches
from training.train import CharTask, TrainConfig, ema, make_optimizer, steps

from .common import best_rates, table, train_text

ROUNDS = 4


def tutorial_epoch(model, optimizer, ids, epoch) -> int:
    """The tutorial's loop: one-hot input, batch 32, 35 steps, Adam, gradient clipping at norm 1."""
    chars = 0
    for x, y in random_batches(ids, 32, 35, torch.Generator().manual_seed(epoch)):
        logits, _ = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        chars += y.numel()
    return chars


def main() -> None:
    text = train_text()
    tutorial_vocab = Vocab.build(text, min_count=1)
    tutorial = CharRNN(tutorial_vocab.to_dict(), cell="rnn", hidden_size=256, one_hot=True).train()
    tutorial_opt = torch.optim.Adam(tutorial.parameters(), lr=1e-3)
    tutorial_ids = torch.tensor(tutorial_vocab.encode(text))

    cfg = TrainConfig(cell="rnn", progress=False)
    vocab = Vocab.build(text, cfg.min_count, cfg.newlines)
    task = CharTask(cfg, vocab, text, "")
    model = task.build()
    averaged = AveragedModel(model, multi_avg_fn=ema(cfg.ema), use_buffers=True)
    optimizer = make_optimizer(cfg, model.parameters())
    rates = best_rates({"tutorial": lambda e: tutorial_epoch(tutorial, tutorial_opt, tutorial_ids, e),
                        "ours": lambda e: sum(n for _, n, _ in steps(model, averaged, optimizer, task, cfg, e,
                                                                       torch.device("cpu")))},
                       ROUNDS)
    baseline, ours = rates["tutorial"], rates["ours"]

    table("Training speed, nn.RNN with 256 hidden units, Jay Chou training text",
          ["setup", "input", "batch x steps", "output layer", "chars/s", "vs tutorial"],
          [["classic tutorial", f"one-hot {len(tutorial_vocab)}", "32 x 35", f"256 -> {len(tutorial_vocab)}",
            round(baseline), 1.0],
           ["charrnn defaults (with clipping, EMA)", f"embedding {cfg.embed_size}", f"{cfg.batch_size} x {cfg.num_steps}",
            f"256 -> {cfg.head_size} -> {len(vocab)}", round(ours), ours / baseline]])


if __name__ == "__main__":
    main()
