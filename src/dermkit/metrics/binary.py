"""Binary metrics of one score per case (e.g. P(malignant)): ROC, AUROC, AP, thresholds, partial AUC.

Everything derives from one cumulative curve over the distinct scores, taken from the highest
down; a case is called positive when ``score >= threshold``, and tied scores move together, as in
``sklearn.metrics.roc_curve``. Thresholds are chosen on validation data with
:func:`choose_threshold` and then applied unchanged to test data.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from dermkit.core import InputError
from dermkit.metrics.classification import ClassRates, rates_from_counts
from dermkit.metrics.inputs import UndefinedMetricError


def _check_binary(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """Finite float scores and boolean labels of equal length."""
    values = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(labels)
    if values.ndim != 1 or truth.shape != values.shape:
        raise InputError(f"scores {values.shape} and labels {truth.shape} must be equal-length vectors")
    if not np.isfinite(values).all():
        raise InputError("scores contain NaN or infinite values", field="scores")
    if not np.isin(truth, (0, 1)).all():
        raise InputError("binary labels must be 0/1 or booleans", field="labels")
    return values, truth.astype(bool)


def _cumulative_counts(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives at each distinct threshold, highest first (sklearn's clf curve)."""
    values, truth = _check_binary(scores, labels)
    order = np.argsort(values, kind="stable")[::-1]
    values, truth = values[order], truth[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(values)), values.size - 1]
    tps = np.cumsum(truth)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return fps, tps, values[last_of_tie]


def roc_curve(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at every distinct score, starting from the point (0, 0).

    The first threshold is ``inf`` (nobody positive). Raises :class:`UndefinedMetricError` unless
    both classes are present.
    """
    fps, tps, thresholds = _cumulative_counts(scores, labels)
    if tps.size == 0 or tps[-1] == 0 or fps[-1] == 0:
        raise UndefinedMetricError("ROC needs both positive and negative cases")
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return fpr, tpr, np.r_[np.inf, thresholds]


def auroc(scores: object, labels: object) -> float:
    """Area under the ROC curve (trapezoidal, so tied scores count one half)."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.trapezoid(tpr, fpr))


def average_precision(scores: object, labels: object) -> float:
    """Step-wise area under precision-recall, ``sum((R_n - R_{n-1}) P_n)`` as scikit-learn."""
    fps, tps, _ = _cumulative_counts(scores, labels)
    if tps.size == 0 or tps[-1] == 0:
        raise UndefinedMetricError("average precision needs at least one positive case")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def rates_at_threshold(scores: object, labels: object, threshold: float) -> ClassRates:
    """Sensitivity, specificity, PPV and NPV when ``score >= threshold`` is called positive."""
    values, truth = _check_binary(scores, labels)
    called = values >= threshold
    tp = np.sum(called & truth)
    fp = np.sum(called & ~truth)
    fn = np.sum(~called & truth)
    tn = np.sum(~called & ~truth)
    return rates_from_counts(tp, fp, fn, tn)


def choose_threshold(
    val_scores: object,
    val_labels: object,
    rule: Literal["youden", "sensitivity"] = "youden",
    target: float = 0.9,
) -> float:
    """An operating threshold chosen on *validation* data, to be applied unchanged to test data.

    ``youden`` maximises sensitivity + specificity − 1; ``sensitivity`` takes the highest threshold
    whose sensitivity is at least ``target`` (the most specific one that meets it). Ties between
    thresholds go to the highest.
    """
    fpr, tpr, thresholds = roc_curve(val_scores, val_labels)
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]  # inf calls nobody positive
    if rule == "youden":
        return float(thresholds[np.argmax(tpr - fpr)])
    if rule == "sensitivity":
        if not 0 < target <= 1:
            raise InputError(f"target sensitivity must lie in (0, 1], got {target}", field="target")
        return float(thresholds[np.argmax(tpr >= target)])
    raise InputError(f"unknown threshold rule {rule!r} (youden | sensitivity)", field="rule")


def sensitivity_at_specificity(scores: object, labels: object, specificity: float = 0.9) -> float:
    """Best sensitivity over achievable thresholds whose specificity is at least ``specificity``.

    No interpolation between ROC points: the value is reachable by a real threshold.
    """
    if not 0 <= specificity <= 1:
        raise InputError(f"specificity must lie in [0, 1], got {specificity}", field="specificity")
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(tpr[fpr <= 1 - specificity + 1e-12].max())


def partial_auc_above_tpr(
    scores: object,
    labels: object,
    min_tpr: float = 0.8,
    baseline: Literal["min_tpr", "zero"] = "min_tpr",
) -> float:
    """Partial AUC in the high-sensitivity region ``TPR >= min_tpr``, unnormalised.

    The ROC curve is cut at an interpolated point at exactly ``TPR = min_tpr`` (as the ISIC
    scorer does). With ``baseline="min_tpr"`` (default) the value is the area between the curve and
    the line ``TPR = min_tpr``, at most ``1 - min_tpr`` (0.2): the ISIC 2024 challenge's pAUC.
    With ``baseline="zero"`` it is the area under the curve over the FPR range where
    ``TPR >= min_tpr``, at most 1: ``auc_sens_80`` of ``isic-challenge-scoring`` 5.6.
    """
    if not 0 < min_tpr <= 1:
        raise InputError(f"min_tpr must lie in (0, 1], got {min_tpr}", field="min_tpr")
    fpr, tpr, _ = roc_curve(scores, labels)
    cut = int(np.searchsorted(tpr, min_tpr, side="left"))
    fpr_at_cut = float(np.interp(min_tpr, tpr[cut - 1 : cut + 1], fpr[cut - 1 : cut + 1]))
    area = float(np.trapezoid(np.r_[min_tpr, tpr[cut:]], np.r_[fpr_at_cut, fpr[cut:]]))
    if baseline == "zero":
        return area
    if baseline == "min_tpr":
        return area - min_tpr * (1.0 - fpr_at_cut)
    raise InputError(f"unknown baseline {baseline!r} (min_tpr | zero)", field="baseline")
