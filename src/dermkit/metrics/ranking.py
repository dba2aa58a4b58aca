"""One-vs-rest AUROC and average precision of a multiclass classifier, per class and macro.

A class absent from the labels (or present in every row) has no AUROC: it is skipped, listed in
:attr:`PerClass.skipped`, and left out of the macro mean instead of crashing the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dermkit.metrics import binary
from dermkit.metrics.inputs import UndefinedMetricError, check_pair


@dataclass(frozen=True)
class PerClass:
    """Per-class values (NaN where undefined), their macro mean, and the skipped class indices."""

    values: np.ndarray
    skipped: tuple[int, ...]

    @property
    def macro(self) -> float:
        """Mean over the classes that have a value; undefined when every class was skipped."""
        if len(self.skipped) == self.values.size:
            raise UndefinedMetricError("no class has a defined value")
        return float(np.nanmean(self.values))


def _one_vs_rest(probs: object, target: object, metric: Callable[[np.ndarray, np.ndarray], float]) -> PerClass:
    """Apply a binary metric to each class's column against ``label == class``."""
    scores, labels = check_pair(probs, target)
    values = np.full(scores.shape[1], np.nan)
    skipped = []
    for index in range(scores.shape[1]):
        try:
            values[index] = metric(scores[:, index], labels == index)
        except UndefinedMetricError:
            skipped.append(index)
    return PerClass(values=values, skipped=tuple(skipped))


def auroc_per_class(probs: object, target: object) -> PerClass:
    """One-vs-rest AUROC of every class."""
    return _one_vs_rest(probs, target, binary.auroc)


def macro_auroc(probs: object, target: object) -> float:
    """Unweighted mean one-vs-rest AUROC over the classes where it is defined."""
    return auroc_per_class(probs, target).macro


def average_precision_per_class(probs: object, target: object) -> PerClass:
    """One-vs-rest average precision of every class (skipped where the class has no positive)."""
    return _one_vs_rest(probs, target, binary.average_precision)


def macro_average_precision(probs: object, target: object) -> float:
    """Unweighted mean one-vs-rest average precision over the classes where it is defined."""
    return average_precision_per_class(probs, target).macro


def partial_auc_per_class(probs: object, target: object, min_tpr: float = 0.8) -> PerClass:
    """One-vs-rest partial AUC above ``min_tpr`` (see :func:`binary.partial_auc_above_tpr`)."""
    return _one_vs_rest(probs, target, lambda scores, labels: binary.partial_auc_above_tpr(scores, labels, min_tpr))
