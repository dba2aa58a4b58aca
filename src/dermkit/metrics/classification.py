"""Label metrics of a multiclass classifier: accuracy, balanced accuracy, kappa, F1, per-class rates.

All take ``probs`` (N×C) and ``target`` (labels or soft weights, see :mod:`.inputs`). A row whose
top score is tied is *undecided* and counts as wrong everywhere, as the ISIC challenge scorer does.
Per-class rates use the clinical definitions (sensitivity = TP/(TP+FN), NPV = TN/(TN+FN)) and are
NaN where their denominator is zero, rather than a silent 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermkit.core import InputError
from dermkit.metrics.inputs import (
    UndefinedMetricError,
    check_pair,
    predicted_labels,
    ranked_classes,
)


@dataclass(frozen=True)
class ClassRates:
    """One-vs-rest rates per class (arrays of length C; NaN where a denominator is zero)."""

    sensitivity: np.ndarray
    specificity: np.ndarray
    ppv: np.ndarray
    npv: np.ndarray
    support: np.ndarray


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio, NaN where the denominator is zero."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def rates_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> ClassRates:
    """Sensitivity, specificity, PPV and NPV from confusion counts (scalars or per class)."""
    return ClassRates(
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
        support=np.asarray(tp + fn),
    )


def confusion_matrix(probs: object, target: object) -> np.ndarray:
    """C×C counts, rows true class, columns predicted; undecided rows appear in no column."""
    scores, labels = check_pair(probs, target)
    n_classes = scores.shape[1]
    predicted = predicted_labels(scores)
    decided = predicted >= 0
    flat = labels[decided] * n_classes + predicted[decided]
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def accuracy(probs: object, target: object) -> float:
    """Share of rows whose (untied) arg-max is the label."""
    scores, labels = check_pair(probs, target)
    return float(np.mean(predicted_labels(scores) == labels))


def top_k_accuracy(probs: object, target: object, k: int = 3) -> float:
    """Share of rows whose label is among the k best-scored classes (scikit-learn's tie rule)."""
    scores, labels = check_pair(probs, target)
    if not 1 <= k <= scores.shape[1]:
        raise InputError(f"k must lie in [1, {scores.shape[1]}], got {k}", field="k")
    top = ranked_classes(scores)[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def class_rates(probs: object, target: object) -> ClassRates:
    """Per-class one-vs-rest sensitivity, specificity, PPV, NPV and support."""
    scores, labels = check_pair(probs, target)
    n_classes = scores.shape[1]
    predicted = predicted_labels(scores)
    classes = np.arange(n_classes)
    is_true = labels[:, None] == classes
    is_pred = predicted[:, None] == classes
    tp = (is_true & is_pred).sum(axis=0)
    fp = (~is_true & is_pred).sum(axis=0)
    fn = (is_true & ~is_pred).sum(axis=0)
    tn = labels.shape[0] - tp - fp - fn
    return rates_from_counts(tp, fp, fn, tn)


def balanced_accuracy(probs: object, target: object) -> float:
    """Mean sensitivity over the classes present in ``target`` (absent classes are skipped)."""
    sensitivity = class_rates(probs, target).sensitivity
    return float(np.nanmean(sensitivity))


def macro_f1(probs: object, target: object) -> float:
    """Unweighted mean F1 over all C classes; a class never true nor predicted scores 0 (sklearn)."""
    rates = class_rates(probs, target)
    precision = np.nan_to_num(rates.ppv)
    recall = np.nan_to_num(rates.sensitivity)
    f1 = np.nan_to_num(_ratio(2 * precision * recall, precision + recall))
    return float(np.mean(f1))


def cohen_kappa(probs: object, target: object) -> float:
    """Cohen's kappa between labels and predictions; undecided is one more (never true) category."""
    scores, labels = check_pair(probs, target)
    n_classes = scores.shape[1]
    predicted = predicted_labels(scores)
    predicted = np.where(predicted == -1, n_classes, predicted)
    size = n_classes + 1
    counts = np.bincount(labels * size + predicted, minlength=size * size).reshape(size, size)
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / counts.sum()
    disagreement = counts.sum() - np.trace(counts)
    expected_disagreement = expected.sum() - np.trace(expected)
    if expected_disagreement == 0:
        raise UndefinedMetricError("kappa is undefined when both raters use a single category")
    return float(1 - disagreement / expected_disagreement)
