"""Training on several processes or machines with PyTorch's DistributedDataParallel.

``torchrun`` starts one process per device and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`setup` joins them into one group (gloo on CPUs, nccl on GPUs). Every process draws the same
permutation of the training set each epoch and takes its share of each global batch
(``idx[rank::world]``), so the processes together see exactly the batches one process would; DDP
averages the gradients, and each process scales its summed loss by the number of processes, so an
optimizer step is that of one process on the global batch (BatchNorm statistics are each
process's own, as usual with DDP). Logging, evaluation, checkpoints and the card are rank 0's; a
resumed run reads the checkpoint on rank 0 and sends it to the others. Without ``torchrun`` it is
one process and nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: its rank, how many processes, and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0: logs, evaluates, checkpoints and writes the card."""
        return self.rank == 0

    def shard(self, idx: Tensor) -> Tensor:
        """This process's share of a global batch of indices."""
        return idx[self.rank :: self.world]

    def share(self, obj: object) -> object:
        """Rank 0's ``obj`` on every process."""
        if self.world == 1:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def total(self, values: list[float]) -> list[float]:
        """The sums of ``values`` over the processes."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


def setup() -> Processes:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1); else one process,
    on the GPU when there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Processes(device=torch.device("cuda" if cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), device)


def teardown(processes: Processes) -> None:
    """Leave the process group (after every process has finished)."""
    if processes.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
