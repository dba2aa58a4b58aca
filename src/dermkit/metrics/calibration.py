"""Top-label calibration: expected calibration error and the reliability diagram's data.

Bins are equal-width on the top-label confidence and closed on the right, ``(0, 0.1], (0.1, 0.2],
...``, matching ``sklearn.calibration.calibration_curve(strategy="uniform")``. The confidence is the
largest entry of ``probs``, so ``probs`` should be probabilities (softmax), not logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermkit.core import InputError
from dermkit.metrics.inputs import check_pair, predicted_labels


@dataclass(frozen=True)
class Reliability:
    """Per bin: edges, mean confidence, accuracy and count (NaN confidence/accuracy when empty)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Count-weighted mean gap between accuracy and confidence."""
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(gaps * self.count[filled]) / self.count.sum())


ROUNDING = 1e-5


def reliability(probs: object, target: object, n_bins: int = 15) -> Reliability:
    """Reliability-diagram data of the top label (a tied top counts as wrong, see :mod:`.inputs`)."""
    if n_bins < 1:
        raise InputError(f"n_bins must be positive, got {n_bins}", field="n_bins")
    scores, labels = check_pair(probs, target)
    # float32 softmax and probe outputs can land a rounding error outside [0, 1]: clip those only.
    if scores.min() < -ROUNDING or scores.max() > 1 + ROUNDING:
        raise InputError("calibration needs probabilities in [0, 1]", field="probs")
    scores = np.clip(scores, 0.0, 1.0)
    confidence = scores.max(axis=1)
    correct = (predicted_labels(scores) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        mean_accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return Reliability(edges=edges, confidence=mean_confidence, accuracy=mean_accuracy, count=count)


def expected_calibration_error(probs: object, target: object, n_bins: int = 15) -> float:
    """ECE with equal-width bins on the top-label confidence."""
    return reliability(probs, target, n_bins).ece
