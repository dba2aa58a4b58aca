"""Stateful metrics: accumulate batches with ``update``, ``compute`` once, in one or many processes.

A :class:`Metric` wraps any functional metric of this package. It keeps every batch's scores and
targets (the exact values, so ranking metrics such as AUROC are exact, not binned) and, when
``torch.distributed`` is initialised, ``compute`` all-gathers the state of every rank first, so
each rank returns the metric of the whole dataset. Note that ``DistributedSampler`` pads the last
batch with repeated cases; evaluate with ``drop_last=False`` and an unpadded sampler for exact
numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dermkit.core import InputError
from dermkit.core import distributed as ranks

MetricFn = Callable[..., Any]


def _as_numpy(values: Any) -> np.ndarray:
    """A batch (tensor, array or list) as a numpy array on the CPU."""
    if hasattr(values, "detach"):
        return values.detach().cpu().numpy()
    return np.asarray(values)


class Metric:
    """``update(preds, target)`` per batch, ``compute()`` over all batches (and ranks), ``reset()``.

    ``Metric(macro_auroc)`` or ``Metric(top_k_accuracy, k=5)``: keyword arguments go to ``fn``.
    """

    def __init__(self, fn: MetricFn, sync: bool = True, **kwargs: Any) -> None:
        self.fn = fn
        self.sync = sync
        self.kwargs = kwargs
        self._preds: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []

    def update(self, preds: Any, target: Any) -> None:
        """Store one batch of scores (N×C or N) and targets (N or N×C)."""
        preds_array, target_array = _as_numpy(preds), _as_numpy(target)
        if preds_array.shape[0] != target_array.shape[0]:
            raise InputError(f"batch has {preds_array.shape[0]} predictions and {target_array.shape[0]} targets")
        self._preds.append(preds_array)
        self._targets.append(target_array)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """All accumulated ``(preds, target)``, gathered from every rank when distributed."""
        if not self._preds:
            raise InputError("compute() called before any update()")
        preds, target = np.concatenate(self._preds), np.concatenate(self._targets)
        if self.sync and ranks.world_size() > 1:
            preds, target = ranks.all_gather_rows(preds), ranks.all_gather_rows(target)
        return preds, target

    def compute(self) -> Any:
        """The wrapped metric over everything seen since the last reset."""
        preds, target = self.state()
        return self.fn(preds, target, **self.kwargs)

    def reset(self) -> None:
        """Forget all batches (e.g. between epochs)."""
        self._preds.clear()
        self._targets.clear()
