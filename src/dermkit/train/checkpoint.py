"""Atomic training checkpoints holding everything an exact resume needs.

A checkpoint is written to a temporary file and renamed over ``last.pt`` only once complete, so
a run killed (or failing) while saving leaves the previous checkpoint intact. Besides weights,
optimiser and scheduler it stores every RNG state (per rank) and the data position (epoch and
batches done in it), which together make a resumed run continue bit for bit.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dermkit.core import distributed as ranks
from dermkit.core.atomic import atomic_path
from dermkit.core.errors import DermkitError, InputError

CHECKPOINT = "checkpoints/last.pt"


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG states, as tensors and plain values so ``weights_only`` loading accepts them."""
    # numpy's stubs pick the dict overload for a bare get_state(); the legacy default gives the tuple
    numpy_state = np.random.get_state(legacy=True)
    if not isinstance(numpy_state, tuple):  # only an MT19937 generator has the legacy form
        raise DermkitError("numpy's global random generator is not MT19937: cannot save its state")
    kind, keys, position, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if device.type != "cpu":
        state["device"] = torch.get_device_module(device.type).get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "device" in state:
        torch.get_device_module(device.type).set_rng_state(state["device"], device)


def _tuples(value: Any) -> Any:
    """``random.setstate`` wants the nested tuples that serialisation may have turned into lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def all_rng_states(device: torch.device) -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (collective: all ranks must call it)."""
    return ranks.all_gather_objects(rng_state(device))


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``run_dir/checkpoints/last.pt`` (call on the main rank only)."""
    target = run_dir / CHECKPOINT
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    return target


def load_checkpoint(run_dir: Path, recipe: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The run's last checkpoint, or None; with ``recipe``, refuse one written with other settings.

    Resuming under a changed recipe would silently train a different model than either run asked for.
    """
    target = run_dir / CHECKPOINT
    if not target.exists():
        return None
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise InputError(f"unreadable checkpoint ({type(exc).__name__}: {exc})", file=target) from exc
    if recipe is not None:
        differing = sorted(k for k, v in recipe.items() if state["config"].get(k) != v)
        if differing:
            raise InputError(f"--resume with settings that differ from the checkpoint's: {differing}", file=run_dir)
    return state


def restore_rng(states: list[dict[str, Any]], device: torch.device) -> None:
    """Restore this rank's RNG states; a run resumed on a different number of processes cannot be exact."""
    if len(states) != ranks.world_size():
        raise InputError(
            f"checkpoint was written by {len(states)} processes, resuming on {ranks.world_size()}"
        )
    set_rng_state(states[ranks.rank()], device)
