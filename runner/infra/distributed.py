"""Data-parallel runs under torchrun (DistributedDataParallel): NCCL on CUDA, gloo on the CPU.

    torchrun --nproc_per_node=4 train_eval_part.py ...            # one machine, 4 processes
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 train_eval_part.py ...

`--batch-size` stays the global batch: each rank trains on its slice of every global batch of the
epoch's seeded order, so the batches (and the evaluation's per-batch seeds) are the same as in one
process. Every collective here is a no-op when there is one process, so a run without torchrun (or
with one process) does what it always did. Importing this module does not import torch.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

# torchrun sets these for every worker.
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

def launched() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARS)


def env_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ["WORLD_SIZE"]) if launched() else 1


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launched: bool = False

    @property
    def main(self) -> bool:
        """Rank 0: the only one that prints, saves and writes results."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def sum_(self, *tensors) -> None:
        """In-place sum over ranks."""
        if self.parallel:
            import torch.distributed as dist
            for t in tensors:
                dist.all_reduce(t, op=dist.ReduceOp.SUM)

    def max_(self, *tensors) -> None:
        if self.parallel:
            import torch.distributed as dist
            for t in tensors:
                dist.all_reduce(t, op=dist.ReduceOp.MAX)

    def max_int(self, value: int, device) -> int:
        """The largest of the ranks' values, on every rank."""
        if not self.parallel:
            return value
        import torch
        t = torch.tensor([value], device=device)
        self.max_(t)
        return int(t.item())

    def gather(self, obj: object) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.parallel:
            return [obj]
        import torch.distributed as dist
        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.parallel:
            import torch.distributed as dist
            dist.barrier()

    def sync_buffers(self, model) -> None:
        """Rank 0's BatchNorm statistics to every rank (each rank updates its own during an epoch, as
        DataParallel's replicas do), so that all ranks hold one model between epochs."""
        if self.parallel:
            import torch.distributed as dist
            for b in model.buffers():
                dist.broadcast(b, 0)


@contextlib.contextmanager
def process_group(device_choice: str):
    """The Dist of this process: a process group under torchrun (NCCL when CUDA is used, else gloo),
    torn down afterwards; Dist() without torchrun."""
    if not launched():
        yield Dist()
        return
    import torch
    import torch.distributed as dist
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = device_choice != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield Dist(dist.get_rank(), dist.get_world_size(), local_rank, True)
    finally:
        dist.destroy_process_group()


def shard(batch, rank: int, world: int):
    """This rank's part of one global batch of indices: near-equal contiguous slices (the global
    batch divides evenly except, perhaps, the last one of an epoch)."""
    import torch
    return torch.tensor_split(batch, world)[rank] if world > 1 else batch
