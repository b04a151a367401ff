"""The training objective both tasks share: cross-entropy smoothed toward the unigram of the training targets; and,
for a character model, a teacher's distribution to learn from as well (knowledge distillation)."""
import torch
import torch.nn.functional as F

MAX_TAUGHT_BYTES = 4 * 2**30


def unigram(ids: torch.Tensor, size: int) -> torch.Tensor:
    counts = torch.bincount(ids, minlength=size).float() + 1
    return counts / counts.sum()


def smoothed_loss(logits, targets, smoothing: float, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy against (1 - smoothing) * one-hot + smoothing * prior, and the plain cross-entropy.

    With the unigram as prior the model learns to hedge the way an interpolated n-gram backs off,
    instead of becoming sure of what it memorised: on the lyrics this is worth more than any dropout.
    (Swapping targets for draws from the prior is the same in expectation and cheaper, but its noise
    cost 13% held-out perplexity.)
    """
    log_probs = logits.log_softmax(-1)
    hard = F.nll_loss(log_probs, targets)
    return (1 - smoothing) * hard - smoothing * (log_probs @ prior).mean(), hard


@torch.inference_mode()
def teacher_targets(teacher, ids: torch.Tensor) -> torch.Tensor:
    """The teacher network's distribution of the next character after each position of ids [N, V], read once in
    order with the state carried through the text. Kept whole, in half precision (200 MB for the lyrics: 51,000
    characters, 1,962 in the vocabulary): the lyrics LSTM's 64 likeliest characters hold only 74% of its
    probability, and renormalising them made a worse teacher (the RNN's held-out perplexity 243.9 against 242.6)."""
    size = len(ids) * len(teacher.vocab) * 2
    if size > MAX_TAUGHT_BYTES:
        raise ValueError(f"the teacher's distributions over this text would take {size / 2**30:.1f} GiB (at most "
                         f"{MAX_TAUGHT_BYTES / 2**30:.0f}): distil on a shorter text, or a smaller vocabulary")
    teacher.eval()
    taught, state = [], None
    for chunk in ids.split(4096):
        logits, state = teacher(chunk[None].to(teacher.device), state)
        taught.append(logits[0].float().softmax(-1).half().cpu())
    return torch.cat(taught)


def distilled_loss(logits, taught) -> torch.Tensor:
    """Cross-entropy against the teacher's distributions taught [..., V]."""
    return -(logits.log_softmax(-1) * taught.float()).sum(-1).mean()
