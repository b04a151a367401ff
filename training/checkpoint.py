"""Checkpoints of a training run, written atomically so that a killed run never leaves a broken one."""
import os
from pathlib import Path

import torch


def save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: the old checkpoint stays until the new one is complete


def load(path: Path) -> dict:
    # Our own local file, never a download; weights_only refuses anything but tensors and plain data.
    return torch.load(path, weights_only=True)
