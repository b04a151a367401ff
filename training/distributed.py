"""Training on more than one process: `torchrun --nproc_per_node N -m training ...` starts N copies of the run,
and torch.distributed lets them agree. Plain `python -m training` is a world of one, where all of this is a no-op.

Every rank builds the same global batch (the same seed, the same generator) and trains on its own rows of it:
for the sequential sampler that is its own contiguous share of the text. DistributedDataParallel averages the
gradients, so N processes take the steps one process takes with the whole batch. Rank 0 alone validates,
writes checkpoints, the progress file and the export, and tells the others how the run stands.
"""
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def check(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise ValueError(f"--batch-size {batch_size} must be a multiple of the {self.size} processes: each takes "
                             f"an equal share of every batch")

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model to call in training: its gradients averaged over the ranks."""
        return model if self.size == 1 else DistributedDataParallel(model)

    def share(self, batch: list[torch.Tensor]) -> list[torch.Tensor]:
        """This rank's rows of a global batch."""
        rows = len(batch[0]) // self.size
        return [t[self.rank * rows:(self.rank + 1) * rows] for t in batch]

    def total(self, *numbers: float) -> list[float]:
        """Each number summed over the ranks."""
        if self.size == 1:
            return list(numbers)
        summed = torch.tensor(numbers, dtype=torch.float64)
        dist.all_reduce(summed)
        return summed.tolist()

    def from_main(self, value):
        """Rank 0's value, on every rank."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, out of its DistributedDataParallel wrapper if it has one."""
    return getattr(model, "module", model)


@contextmanager
def joined(device: torch.device):
    """The world this process belongs to (torchrun's environment says), and the device it trains on."""
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size == 1:
        yield World(), device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    try:
        yield World(dist.get_rank(), dist.get_world_size()), device
        dist.barrier()  # every rank leaves the group together (a rank tearing gloo down alone once aborted)
    finally:
        dist.destroy_process_group()
