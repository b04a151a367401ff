"""numpy and torch behind the same names: what the decoding step needs that the two spell differently.

decoding.Stepper is written once against these (and the operators both share). Small batches on a CPU
run on NUMPY: with a few rows per matrix product, a numpy call costs a fraction of a torch call and
OpenBLAS's matrix-vector product beats MKL's (bench/decoding_speed.py). Large batches and GPUs run on TORCH.
"""
from functools import cache
from types import SimpleNamespace

import numpy as np
import torch
from threadpoolctl import threadpool_limits


def torch_argmax(x: torch.Tensor) -> torch.Tensor:
    """Per row; on a CPU through numpy, whose kernel is vectorised (torch's is several times slower on wide rows)."""
    return torch.from_numpy(x.numpy().argmax(1)) if x.device.type == "cpu" else x.argmax(1)


def torch_sample(weights: torch.Tensor, uniforms: list[float], greedy: list[bool]) -> list[int]:
    """Per row, the argmax (greedy rows) or the first id whose cumulative weight exceeds u * total: inverse-CDF
    sampling needs one uniform number a row (multinomial and Gumbel noise draw V numbers a row)."""
    if all(greedy):
        return torch_argmax(weights).tolist()
    cdf = weights.cumsum(1)
    x = torch.tensor(uniforms, dtype=cdf.dtype, device=cdf.device)[:, None] * cdf[:, -1:]
    ids = torch.searchsorted(cdf, x, right=True).clamp_(max=cdf.shape[1] - 1).squeeze(1).tolist()
    if any(greedy):
        top = torch_argmax(weights).tolist()
        ids = [t if g else i for i, t, g in zip(ids, top, greedy)]
    return ids


TORCH_CUMSUM = 4096


def numpy_sample(weights: np.ndarray, uniforms: list[float], greedy: list[bool]) -> list[int]:
    """The same, a binary search a row (numpy's searchsorted takes one row at a time). Over TORCH_CUMSUM weights
    the cumulative sums are torch's, which are faster there (below, torch's call costs more than it saves)."""
    if all(greedy):
        return weights.argmax(1).tolist()
    cdf = torch.from_numpy(weights).cumsum(1).numpy() if weights.size > TORCH_CUMSUM else weights.cumsum(1)
    last = cdf.shape[1] - 1
    ids = [min(int(row.searchsorted(u * row[-1], side="right")), last) for row, u in zip(cdf, uniforms)]
    if any(greedy):
        top = weights.argmax(1).tolist()
        ids = [t if g else i for i, t, g in zip(ids, top, greedy)]
    return ids


def numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def numpy_topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row, largest first; a partition first when k is small (a full sort does far more work)."""
    if 4 * k < x.shape[1]:
        ids = np.argpartition(-x, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(x, ids, 1), axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, 1)
    else:
        ids = np.argsort(-x, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(x, ids, 1), ids


def top_filter(ops, weights, top_k: int | None, top_p: float | None):
    """weights with all but the top-k ids zeroed, then all but the smallest set whose mass reaches top-p
    (the likeliest always stays)."""
    values, ids = ops.topk(weights, min(top_k or weights.shape[1], weights.shape[1]))
    if top_p:
        probs = values / values.sum(1, keepdims=True)
        values = values * (probs.cumsum(1) - probs < top_p)
    return ops.scatter(ops.xp.zeros_like(weights), ids, values)


def numpy_scatter(into: np.ndarray, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    np.put_along_axis(into, ids, values, 1)
    return into


BLOCK_FLOATS = 128 * 1024  # 512 KiB of float32
BLOCKED_ROWS = 3  # fewer rows multiply by the whole weight as fast or faster


class ColumnBlocks:
    """A weight [in, out] for `x @ w`, also kept as column blocks of at most BLOCK_FLOATS. With 3-8 rows, OpenBLAS's
    product with a weight past about 512 KiB is 2-5x slower than the same product block by block (an LSTM's
    256 x 1024 W_hh at 4 rows: 128 against 25 us on this CPU, whose L2 holds 1 MiB)."""

    __array_ufunc__ = None  # numpy leaves `x @ blocks` to __rmatmul__

    def __init__(self, weight: np.ndarray):
        self.whole, width = weight, max(1, BLOCK_FLOATS // weight.shape[0])
        self.blocks = [(slice(j, j + width), np.ascontiguousarray(weight[:, j:j + width]))
                       for j in range(0, weight.shape[1], width)]

    def __rmatmul__(self, x: np.ndarray) -> np.ndarray:
        if len(x) < BLOCKED_ROWS:
            return x @ self.whole
        out = np.empty((len(x), self.whole.shape[1]), x.dtype)
        for columns, block in self.blocks:
            np.matmul(x, block, out=out[:, columns])
        return out


def numpy_weight(tensor: torch.Tensor):
    weight = np.ascontiguousarray(tensor.numpy())  # row-major [in, out] is OpenBLAS's fastest
    return weight if weight.size <= BLOCK_FLOATS else ColumnBlocks(weight)


TORCH = SimpleNamespace(
    xp=torch,
    array=lambda tensor: tensor,
    weight=lambda tensor: tensor,
    asarray=lambda values, device: torch.tensor(values, device=device),
    rows_of=lambda x, row, n: x[row:row + 1].repeat(n, 1),
    copy=torch.clone,
    rows=torch.embedding,  # half the time of table[ids] at [64, 256]
    affine=lambda x, w, b: torch.addmm(b, x, w),
    sigmoid=torch.sigmoid,
    softmax=lambda x: x.softmax(1),
    sample=torch_sample,
    topk=lambda x, k: x.topk(k, 1),
    scatter=lambda into, ids, values: into.scatter_(1, ids, values),
    cat=torch.cat,
)

NUMPY = SimpleNamespace(
    xp=np,
    array=lambda tensor: np.ascontiguousarray(tensor.numpy()),
    weight=numpy_weight,  # what rows are multiplied by: x @ weight
    asarray=lambda values, device: np.asarray(values),
    rows_of=lambda x, row, n: x[row:row + 1],  # broadcast: the shared h @ W_hh is computed once, not n times
    copy=np.copy,
    rows=lambda table, ids: table[ids],
    affine=lambda x, w, b: x @ w + b,
    sigmoid=lambda x: 0.5 + 0.5 * np.tanh(0.5 * x),
    softmax=numpy_softmax,
    sample=numpy_sample,
    topk=numpy_topk,
    scatter=numpy_scatter,
    cat=np.concatenate,
)
TORCH.top_filter = lambda w, k, p: top_filter(TORCH, w, k, p)
NUMPY.top_filter = lambda w, k, p: top_filter(NUMPY, w, k, p)


NUMPY_ROWS = 16  # up to here numpy steps a batch on a CPU at least as fast as torch (bench/decoding_speed.py)


def for_decoding(device: torch.device, batch_size: int) -> SimpleNamespace:
    """The backend for a batch of this size (0: one that sequences join later, as serving.Loop's, mostly few)."""
    if device.type == "cpu" and batch_size <= NUMPY_ROWS:
        one_blas_thread()
        return NUMPY
    return TORCH


@cache
def one_blas_thread() -> None:
    """Give numpy's BLAS one thread, for the whole process. A one-row product gains nothing from a second
    thread, and OpenBLAS's idle threads spin long enough to slow torch's next batch by 15%. torch's own
    BLAS (MKL, linked in) and its OpenMP pool are left alone."""
    threadpool_limits(1, user_api="blas")
