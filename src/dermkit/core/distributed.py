"""Rank helpers every layer shares: one code path for one process and many under ``torchrun``.

At the bottom of the house (torchmetrics keeps its gathering in ``utilities/distributed.py`` for
the same reason) so that data loading, metrics, feature caches, curation and training ask the same
questions the same way. torch is optional here: without it, or without an initialised process
group, every helper answers for a single process.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _group() -> Any | None:
    """``torch.distributed`` when a process group is up, else None (also when torch is absent)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    dist = _group()
    return dist.get_world_size() if dist else 1


def rank() -> int:
    dist = _group()
    return dist.get_rank() if dist else 0


def is_main() -> bool:
    """Only the main process writes checkpoints, logs, caches and exports."""
    return rank() == 0


def barrier() -> None:
    dist = _group()
    if dist:
        dist.barrier()


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank, so all ranks take the same branch."""
    dist = _group()
    if not dist:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    dist = _group()
    if not dist:
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def mean_over_ranks(value: Any) -> Any:
    """The mean of a (detached) tensor over all ranks; the tensor itself in one process."""
    dist = _group()
    if not dist or dist.get_world_size() == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def all_gather_rows(array: np.ndarray) -> np.ndarray:
    """Concatenate ``array`` over all ranks in rank order (ranks may hold different row counts)."""
    dist = _group()
    if not dist or dist.get_world_size() == 1:
        return array
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    local = torch.as_tensor(np.ascontiguousarray(array), device=device)
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.int64, device=device))
    longest = int(max(size.item() for size in sizes))
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: local.shape[0]] = local
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return np.concatenate([part[: int(size.item())].cpu().numpy() for part, size in zip(gathered, sizes, strict=True)])
