"""Process-group helpers: one code path for a single CPU process and many processes under torchrun.

Rank, world size and device come from ``torch.distributed`` and ``torch.accelerator``; nothing
here names CUDA, so gloo on CPU and NCCL (or any other accelerator's backend) on GPUs are the same
code.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist

from dermkit.core.distributed import barrier, rank, world_size


def setup() -> torch.device:
    """Join the process group torchrun describes (if any) and return this process's device."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.accelerator.is_available():
        accelerator = torch.accelerator.current_accelerator()
        assert accelerator is not None
        torch.accelerator.set_device_index(local_rank)
        device = torch.device(accelerator.type, local_rank)
    else:
        device = torch.device("cpu")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend=dist.get_default_backend_for_device(device))
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group() -> Iterator[torch.device]:
    """Join torchrun's group (if any) for the block and leave it afterwards; yields the device.

    A group that was already joined by the caller is left alone. On a clean exit every rank meets
    at a barrier before the group is destroyed: gloo aborts a process ("terminate called without
    an active exception") whose peer closes its connections while it is still finishing a
    collective. After an error there is no barrier, since the other ranks may never reach it.
    """
    owns_group = not dist.is_initialized()
    device = setup()
    try:
        yield device
        if owns_group:
            barrier()
    finally:
        if owns_group:
            teardown()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; callers add their rank so dropout differs between ranks."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank in rank order, keeping the autograd graph."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    import torch.distributed.nn as dist_nn

    return torch.cat(dist_nn.all_gather(tensor), dim=0)


def broadcast_parameters(parameters: Iterable[torch.Tensor]) -> None:
    """Make every rank start from rank 0's weights."""
    if dist.is_initialized():
        for tensor in parameters:
            dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce and average gradients once per optimiser step (after any accumulation).

    Done by hand rather than with ``DistributedDataParallel`` because frozen towers are replaced by
    cached features, so the trained computation is not the model's ``forward``.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The epoch's sample order: a permutation that depends only on (seed, epoch), so it is
    reproducible after a restart and identical on every rank."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


class ShardedBatches:
    """Batch sampler: global batches of the epoch's order, this rank's contiguous slice of each.

    Contiguous slices make the rank-ordered gather rebuild the single-process batch exactly.
    ``start`` skips the global batches a resumed run has already trained on; only the first
    ``count`` global batches are used (at most the full ones), so every rank holds equal batches.
    """

    def __init__(self, n: int, global_batch: int, *, seed: int, epoch: int, start: int = 0,
                 count: int | None = None) -> None:
        size = world_size()
        if global_batch % size:
            raise ValueError(f"batch size {global_batch} is not divisible by the {size} processes")
        self.order = epoch_order(n, seed, epoch)
        self.global_batch, self.local_batch, self.rank = global_batch, global_batch // size, rank()
        full = n // global_batch
        self.start, self.count = start, full if count is None else min(count, full)

    def __len__(self) -> int:
        return max(0, self.count - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.start + len(self)):
            first = step * self.global_batch + self.rank * self.local_batch
            yield self.order[first : first + self.local_batch]
