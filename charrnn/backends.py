"""numpy and torch behind the same names: what the decoding step needs that the two spell differently.

decoding.Stepper is written once against these (and the operators both share). A single stream on a
CPU runs on NUMPY: with one row per matrix product, a numpy call costs a fraction of a torch call and
OpenBLAS's matrix-vector product beats MKL's (bench/decoding_speed.py). Batches and GPUs run on TORCH.
"""
from functools import cache
from types import SimpleNamespace

import numpy as np
import torch
from threadpoolctl import threadpool_limits


def torch_argmax(x: torch.Tensor) -> torch.Tensor:
    """Per row; on a CPU through numpy, whose kernel is vectorised (torch's is 6x slower at [64, 2000])."""
    return torch.from_numpy(x.numpy().argmax(1)) if x.device.type == "cpu" else x.argmax(1)


def torch_inverse_cdf(cdf: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per row, the first id whose cumulative mass exceeds x [B, 1], so never one of zero probability
    (clamped in case rounding put x at the total)."""
    return torch.searchsorted(cdf, x, right=True).clamp_(max=cdf.shape[1] - 1).squeeze(1)


def numpy_inverse_cdf(cdf: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The same, by counting (numpy's searchsorted takes one row at a time)."""
    return (cdf[:, :-1] <= x).sum(1)


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def numpy_topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.argsort(-x, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(x, ids, 1), ids


TORCH = SimpleNamespace(
    xp=torch,
    array=lambda tensor: tensor,
    rows=torch.embedding,  # half the time of table[ids] at [64, 256]
    affine=lambda x, w, b: torch.addmm(b, x, w),
    sigmoid=torch.sigmoid,
    softmax=lambda x: x.softmax(1),
    argmax=torch_argmax,
    inverse_cdf=torch_inverse_cdf,
    topk=lambda x, k: x.topk(k, 1),
    gather=lambda x, ids: x.gather(1, ids),
)

NUMPY = SimpleNamespace(
    xp=np,
    array=lambda tensor: np.ascontiguousarray(tensor.numpy()),  # row-major [in, out] is OpenBLAS's fastest
    rows=lambda table, ids: table[ids],
    affine=lambda x, w, b: x @ w + b,
    sigmoid=lambda x: 0.5 + 0.5 * np.tanh(0.5 * x),
    softmax=numpy_softmax,
    argmax=lambda x: x.argmax(1),
    inverse_cdf=numpy_inverse_cdf,
    topk=numpy_topk,
    gather=lambda x, ids: np.take_along_axis(x, ids, 1),
)


def for_decoding(device: torch.device, batch_size: int) -> SimpleNamespace:
    if device.type == "cpu" and batch_size == 1:
        one_blas_thread()
        return NUMPY
    return TORCH


@cache
def one_blas_thread() -> None:
    """Give numpy's BLAS one thread, for the whole process. A one-row product gains nothing from a second
    thread, and OpenBLAS's idle threads spin long enough to slow torch's next batch by 15%. torch's own
    BLAS (MKL, linked in) and its OpenMP pool are left alone."""
    threadpool_limits(1, user_api="blas")
