"""Validation and shared conversions of metric inputs, so every metric reads arrays the same way.

Conventions, fixed once here:

- ``probs`` is an N×C float array of class scores (probabilities or logits);
- ``target`` is either N integer class indices or N×C soft weights (a weighted differential),
  in which case the class with the largest weight is the label (the first one if tied);
- a predicted label is the arg-max of ``probs``; a row whose maximum is tied between classes is
  *undecided* (:data:`UNDECIDED`) and counts as wrong, as in the ISIC challenge scorer;
- class rankings (top-k) break ties like scikit-learn: among equal scores, the higher class
  index ranks first.
"""

from __future__ import annotations

import numpy as np

from dermkit.core import DermkitError, InputError

UNDECIDED = -1
"""Predicted label of a row whose top score is tied between several classes."""


class UndefinedMetricError(DermkitError, ValueError):
    """The metric has no value on these inputs (e.g. AUROC when only one class is present).

    Bootstrap and strata catch it to skip and count a resample instead of crashing.
    """


def as_probs(probs: object) -> np.ndarray:
    """``probs`` as a finite float64 N×C array."""
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2:
        raise InputError(f"probs must be N×C with C ≥ 2, got shape {array.shape}", field="probs")
    if not np.isfinite(array).all():
        raise InputError("probs contains NaN or infinite values", field="probs")
    return array


def as_labels(target: object, n_classes: int) -> np.ndarray:
    """Integer labels in ``[0, n_classes)`` from labels or N×C soft weights (arg-max)."""
    array = np.asarray(target)
    if array.ndim == 2:
        if array.shape[1] != n_classes:
            raise InputError(f"target has {array.shape[1]} columns, probs {n_classes}", field="target")
        return np.argmax(array, axis=1).astype(np.int64)
    if array.ndim != 1:
        raise InputError(f"target must be N labels or N×C weights, got shape {array.shape}", field="target")
    if array.size and not np.issubdtype(array.dtype, np.integer) and not np.all(np.mod(array, 1) == 0):
        raise InputError("labels must be whole class indices", field="target")
    labels = array.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(f"labels must lie in [0, {n_classes}) (drop unlabelled rows, label -1, first)", field="target")
    return labels


def check_pair(probs: object, target: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(probs, labels)`` with matching row counts and at least one row."""
    scores = as_probs(probs)
    labels = as_labels(target, scores.shape[1])
    if labels.shape[0] != scores.shape[0]:
        raise InputError(f"probs has {scores.shape[0]} rows, target {labels.shape[0]}", field="target")
    if labels.shape[0] == 0:
        raise UndefinedMetricError("no rows to evaluate")
    return scores, labels


def predicted_labels(probs: np.ndarray) -> np.ndarray:
    """Arg-max class per row, :data:`UNDECIDED` where the top score is tied."""
    top = probs.max(axis=1, keepdims=True)
    labels = np.argmax(probs, axis=1).astype(np.int64)
    labels[(probs == top).sum(axis=1) > 1] = UNDECIDED
    return labels


def ranked_classes(probs: np.ndarray) -> np.ndarray:
    """Class indices per row from best to worst, ties broken like ``sklearn.top_k_accuracy_score``."""
    return np.argsort(probs, axis=1, kind="stable")[:, ::-1]
