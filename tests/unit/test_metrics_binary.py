"""Binary and one-vs-rest ranking metrics against scikit-learn, ties and degenerate scores included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from dermkit.core import InputError
from dermkit.metrics import (
    UndefinedMetricError,
    auroc,
    auroc_per_class,
    average_precision,
    average_precision_per_class,
    choose_threshold,
    macro_auroc,
    macro_average_precision,
    partial_auc_above_tpr,
    rates_at_threshold,
    roc_curve,
    sensitivity_at_specificity,
)


def binary_case(seed: int, n: int = 400, rounding: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    scores = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * labels)))
    return (scores if rounding is None else np.round(scores, rounding)), labels


def sklearn_pauc_above_tpr(scores: np.ndarray, labels: np.ndarray, min_tpr: float) -> float:
    """Area above TPR=min_tpr via sklearn's McClish-corrected pAUC on the flipped problem."""
    max_fpr = 1 - min_tpr
    scaled = skm.roc_auc_score(~labels, -scores, max_fpr=max_fpr)
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return min_area + (max_area - min_area) * (scaled - 0.5) / 0.5


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rounding", [None, 1])  # rounding to 1 decimal creates many ties
def test_curve_metrics_match_sklearn(seed: int, rounding: int | None) -> None:
    scores, labels = binary_case(seed, rounding=rounding)
    assert auroc(scores, labels) == pytest.approx(skm.roc_auc_score(labels, scores))
    assert average_precision(scores, labels) == pytest.approx(skm.average_precision_score(labels, scores))
    fpr, tpr, thresholds = roc_curve(scores, labels)
    sk_fpr, sk_tpr, sk_thresholds = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds[1:], sk_thresholds[1:])
    for min_tpr in (0.8, 0.9):
        assert partial_auc_above_tpr(scores, labels, min_tpr) == pytest.approx(
            sklearn_pauc_above_tpr(scores, labels, min_tpr)
        )


@pytest.mark.parametrize("specificity", [0.8, 0.9, 0.95])
def test_sensitivity_at_specificity_is_the_best_reachable_point(specificity: float) -> None:
    scores, labels = binary_case(11)
    value = sensitivity_at_specificity(scores, labels, specificity)
    fpr, tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    assert value == pytest.approx(tpr[fpr <= 1 - specificity].max())
    # it is the sensitivity of a real threshold whose specificity meets the target
    reachable = [
        rates_at_threshold(scores, labels, t)
        for t in np.unique(scores)
        if rates_at_threshold(scores, labels, t).specificity >= specificity
    ]
    assert value == pytest.approx(max(r.sensitivity for r in reachable))


def test_degenerate_scores() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1], dtype=bool)
    constant = np.full(6, 0.4)
    assert auroc(constant, labels) == pytest.approx(skm.roc_auc_score(labels, constant)) == 0.5
    assert average_precision(constant, labels) == pytest.approx(skm.average_precision_score(labels, constant))
    perfect = labels.astype(float)
    assert auroc(perfect, labels) == 1.0
    assert auroc(1 - perfect, labels) == 0.0
    assert partial_auc_above_tpr(perfect, labels) == pytest.approx(0.2)
    assert partial_auc_above_tpr(1 - perfect, labels) == pytest.approx(0.0)
    # a constant score's ROC is the diagonal: area above TPR 0.8 is the triangle 0.2²/2
    assert partial_auc_above_tpr(constant, labels) == pytest.approx(0.02)
    assert partial_auc_above_tpr(constant, labels, baseline="zero") == pytest.approx(0.18)
    with pytest.raises(UndefinedMetricError):
        auroc(np.arange(4.0), np.ones(4, dtype=bool))
    with pytest.raises(UndefinedMetricError):
        average_precision(np.arange(4.0), np.zeros(4, dtype=bool))


def test_rates_at_threshold_counts_ties_as_positive() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    labels = np.array([1, 0, 1, 0])
    rates = rates_at_threshold(scores, labels, 0.5)
    assert (rates.sensitivity, rates.specificity, rates.ppv, rates.npv) == (1.0, 0.5, pytest.approx(2 / 3), 1.0)


def test_choose_threshold() -> None:
    scores, labels = binary_case(5)
    fpr, tpr, thresholds = skm.roc_curve(labels, scores, drop_intermediate=False)
    youden = choose_threshold(scores, labels, "youden")
    assert youden == pytest.approx(thresholds[np.argmax(tpr - fpr)])
    for target in (0.8, 0.95):
        chosen = choose_threshold(scores, labels, "sensitivity", target)
        assert rates_at_threshold(scores, labels, chosen).sensitivity >= target
        higher = scores[scores > chosen]
        if higher.size:  # the next threshold up no longer reaches the target
            assert rates_at_threshold(scores, labels, higher.min()).sensitivity < target
    with pytest.raises(InputError):
        choose_threshold(scores, labels, "best")  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(3))
def test_one_vs_rest_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 300)
    probs = rng.dirichlet(np.ones(4), 300) + 0.5 * np.eye(4)[labels]
    probs /= probs.sum(axis=1, keepdims=True)
    assert macro_auroc(probs, labels) == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr"))
    onehot = np.eye(4)[labels]
    assert macro_average_precision(probs, labels) == pytest.approx(
        skm.average_precision_score(onehot, probs, average="macro")
    )


def test_absent_class_is_skipped_and_reported() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 3], 200)
    probs = rng.dirichlet(np.ones(4), 200)
    per_class = auroc_per_class(probs, labels)
    assert per_class.skipped == (2,)
    assert np.isnan(per_class.values[2])
    expected = [skm.roc_auc_score(labels == c, probs[:, c]) for c in (0, 1, 3)]
    assert per_class.macro == pytest.approx(np.mean(expected))
    assert average_precision_per_class(probs, labels).skipped == (2,)
    with pytest.raises(UndefinedMetricError):
        macro_auroc(probs[:1], labels[:1])  # one row: every class is degenerate
