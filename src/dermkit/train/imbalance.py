"""Class-balanced sampling and the mixing-in of synthetic training cases.

Both are per-epoch index draws that depend only on (seed, epoch), so they are identical on every
rank and a resumed run redraws exactly what the interrupted run would have used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dermkit.core.errors import InputError

SAMPLINGS = ("natural", "balanced")


def _generator(seed: int, epoch: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7919 + salt)


def balanced_draw(labels: Sequence[int] | np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """``len(labels)`` indices drawn with replacement so every present class is equally likely."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise InputError("no training cases to sample from")
    counts = np.bincount(labels)
    probabilities = torch.as_tensor(1.0 / counts[labels], dtype=torch.float64)
    return torch.multinomial(probabilities, labels.size, replacement=True,
                             generator=_generator(seed, epoch, 1)).numpy()


def epoch_indices(labels: Sequence[int] | np.ndarray, sampling: str, seed: int, epoch: int) -> np.ndarray:
    """The epoch's training indices: every case once (``natural``) or a class-balanced draw."""
    if sampling not in SAMPLINGS:
        raise InputError(f"unknown sampling {sampling!r}; choose {' or '.join(SAMPLINGS)}", field="sampling")
    return np.arange(len(labels)) if sampling == "natural" else balanced_draw(labels, seed, epoch)


def synthetic_quota(real_labels: Sequence[int], synthetic_labels: Sequence[int], ratio: float) -> dict[int, int]:
    """How many synthetic cases of each class to mix in: ``ratio`` × that class's real training cases,
    capped by what was synthesised (so ratio 0.5 adds half as many synthetic melanomas as real ones)."""
    if ratio < 0:
        raise InputError(f"synthetic ratio must be ≥ 0, got {ratio}", field="synthetic_ratio")
    real = np.bincount(np.asarray(real_labels, dtype=np.int64))
    available = np.bincount(np.asarray(synthetic_labels, dtype=np.int64))
    return {label: int(min(available[label], round(ratio * (real[label] if label < real.size else 0))))
            for label in np.flatnonzero(available).tolist()}


def choose_synthetic(synthetic_labels: Sequence[int], quota: dict[int, int], seed: int) -> np.ndarray:
    """Indices of the synthetic cases kept under ``quota``: a fixed random subset per class."""
    labels = np.asarray(synthetic_labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(np.flatnonzero(labels == label))[:count] for label, count in quota.items()]
    return np.sort(np.concatenate(kept)) if kept else np.empty(0, dtype=np.int64)
