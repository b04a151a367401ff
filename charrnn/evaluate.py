"""Fair held-out perplexity: a character outside the vocabulary costs -log P(<unk>) + log(10000),
so a model cannot buy a lower score with a smaller vocabulary."""
import math

import torch
import torch.nn.functional as F

OOV_PENALTY = math.log(10000)


@torch.inference_mode()
def fair_nll(model, text: str, streams: int = 1, chunk: int = 512) -> tuple[float, int]:
    """Total negative log-likelihood of the characters of text given those before them, and their count.

    streams > 1 reads the text as that many parallel pieces (faster; each piece starts cold).
    """
    model.eval()
    ids = torch.tensor(model.vocab.encode(text), device=model.device)
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    width = (len(ids) - 1) // streams
    inputs = ids[: streams * width].view(streams, width)
    targets = ids[1: streams * width + 1].view(streams, width)
    total, state = 0.0, None
    for start in range(0, width, chunk):
        logits, state = model(inputs[:, start:start + chunk], state)
        y = targets[:, start:start + chunk]
        nll = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        total += (nll.sum() + (y == model.vocab.unk_id).sum() * OOV_PENALTY).item()
    return total, streams * width


def fair_perplexity(model, text: str, streams: int = 1) -> float:
    if len(text) < 3:
        raise ValueError("need at least three characters of text to score")
    total, count = fair_nll(model, text, streams)
    return math.exp(total / count)
