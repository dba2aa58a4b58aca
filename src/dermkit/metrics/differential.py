"""Metrics of a ranked differential against a weighted reference differential.

The reference is N×C non-negative weights (e.g. aggregated from several dermatologists); its
conditions are those with weight > 0, ranked by weight. The model's list is its classes ranked by
score (scikit-learn's tie rule, see :mod:`.inputs`), cut at ``k``. These are the measures used to
evaluate differential-diagnosis systems: top-k accuracy, average top-k sensitivity and the average
overlap of the two ranked lists.
"""

from __future__ import annotations

import numpy as np

from dermkit.core import InputError
from dermkit.metrics.inputs import as_probs, ranked_classes


def _check(probs: object, reference: object, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Model scores and reference weights of the same N×C shape, every case with a reference."""
    scores = as_probs(probs)
    weights = np.asarray(reference, dtype=np.float64)
    if weights.shape != scores.shape:
        raise InputError(f"reference {weights.shape} must have the shape of probs {scores.shape}", field="reference")
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise InputError("reference weights must be finite and non-negative", field="reference")
    if not (weights > 0).any(axis=1).all():
        raise InputError("every case needs at least one reference condition (weight > 0)", field="reference")
    if not 1 <= k <= scores.shape[1]:
        raise InputError(f"k must lie in [1, {scores.shape[1]}], got {k}", field="k")
    return scores, weights


def differential_top_k_accuracy(probs: object, reference: object, k: int = 3) -> float:
    """Share of cases whose reference top condition is in the model's top k (a tied top: any)."""
    scores, weights = _check(probs, reference, k)
    is_top = weights == weights.max(axis=1, keepdims=True)
    model_top = ranked_classes(scores)[:, :k]
    hits = np.take_along_axis(is_top, model_top, axis=1).any(axis=1)
    return float(hits.mean())


def average_top_k_sensitivity(probs: object, reference: object, k: int = 3) -> float:
    """Mean over cases of the share of reference conditions found in the model's top k."""
    scores, weights = _check(probs, reference, k)
    in_reference = weights > 0
    model_top = ranked_classes(scores)[:, :k]
    found = np.take_along_axis(in_reference, model_top, axis=1).sum(axis=1)
    return float(np.mean(found / in_reference.sum(axis=1)))


def average_overlap(probs: object, reference: object, k: int = 3) -> float:
    """Mean over cases of ``AO@k = (1/k) Σ_d |M[:d] ∩ R[:d]| / d`` (Webber et al. 2010).

    ``M`` is the model's ranked list and ``R`` the reference's conditions ranked by weight; a
    reference shorter than ``d`` contributes all of its conditions at depth ``d``.
    """
    scores, weights = _check(probs, reference, k)
    model_top = ranked_classes(scores)[:, :k]
    reference_top = ranked_classes(weights)[:, :k]
    listed = np.take_along_axis(weights, reference_top, axis=1) > 0
    reference_top = np.where(listed, reference_top, -1)
    same = model_top[:, :, None] == reference_top[:, None, :]
    shared = same.cumsum(axis=1).cumsum(axis=2)  # shared[:, i, j]: overlap of M[:i+1] and R[:j+1]
    depth = np.arange(1, k + 1)
    overlap_at_depth = shared[:, depth - 1, depth - 1] / depth
    return float(overlap_at_depth.mean())
