"""Label metrics against scikit-learn, on random inputs and on the edge cases that break metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from dermkit.core import InputError
from dermkit.metrics import (
    UNDECIDED,
    UndefinedMetricError,
    accuracy,
    balanced_accuracy,
    class_rates,
    cohen_kappa,
    confusion_matrix,
    macro_f1,
    predicted_labels,
    top_k_accuracy,
)


def random_case(seed: int, n: int = 300, n_classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


@pytest.mark.parametrize("seed", range(4))
def test_label_metrics_match_sklearn(seed: int) -> None:
    probs, labels = random_case(seed)
    pred = probs.argmax(axis=1)
    classes = list(range(probs.shape[1]))
    assert accuracy(probs, labels) == pytest.approx(skm.accuracy_score(labels, pred))
    assert balanced_accuracy(probs, labels) == pytest.approx(skm.balanced_accuracy_score(labels, pred))
    assert cohen_kappa(probs, labels) == pytest.approx(skm.cohen_kappa_score(labels, pred))
    assert macro_f1(probs, labels) == pytest.approx(skm.f1_score(labels, pred, average="macro", labels=classes))
    np.testing.assert_array_equal(confusion_matrix(probs, labels), skm.confusion_matrix(labels, pred, labels=classes))
    for k in (1, 2, 3):
        assert top_k_accuracy(probs, labels, k) == pytest.approx(
            skm.top_k_accuracy_score(labels, probs, k=k, labels=classes)
        )
    rates = class_rates(probs, labels)
    np.testing.assert_allclose(rates.sensitivity, skm.recall_score(labels, pred, average=None, labels=classes))
    np.testing.assert_allclose(rates.ppv, skm.precision_score(labels, pred, average=None, labels=classes))


def test_rates_on_hand_built_table() -> None:
    # class 0 is "melanoma": 8 true melanomas, 6 found; 12 others, 3 wrongly called melanoma.
    labels = np.array([0] * 8 + [1] * 12)
    called = np.array([0] * 6 + [1] * 2 + [0] * 3 + [1] * 9)
    probs = np.eye(2)[called] * 0.8 + 0.1
    rates = class_rates(probs, labels)
    # TP=6, FN=2, FP=3, TN=9
    assert rates.sensitivity[0] == pytest.approx(6 / 8)
    assert rates.specificity[0] == pytest.approx(9 / 12)
    assert rates.ppv[0] == pytest.approx(6 / 9)
    assert rates.npv[0] == pytest.approx(9 / 11)
    assert rates.sensitivity[0] != pytest.approx(rates.npv[0])  # the MelaNet mix-up is visible
    np.testing.assert_array_equal(rates.support, [8, 12])


def test_absent_class_is_skipped_in_balanced_accuracy_and_nan_in_rates() -> None:
    probs, labels = random_case(7, n_classes=4)
    keep = labels != 2
    probs, labels = probs[keep], labels[keep]
    pred = probs.argmax(axis=1)
    with pytest.warns(UserWarning):
        expected = skm.balanced_accuracy_score(labels, pred)
    assert balanced_accuracy(probs, labels) == pytest.approx(expected)
    assert np.isnan(class_rates(probs, labels).sensitivity[2])


def test_tied_top_score_is_undecided_and_wrong() -> None:
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.7, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    labels = np.array([0, 1, 2])
    np.testing.assert_array_equal(predicted_labels(probs), [UNDECIDED, 1, UNDECIDED])
    assert accuracy(probs, labels) == pytest.approx(1 / 3)
    assert balanced_accuracy(probs, labels) == pytest.approx(1 / 3)
    assert confusion_matrix(probs, labels).sum() == 1
    # kappa treats undecided as an extra category, exactly like sklearn given label -1
    assert cohen_kappa(probs, labels) == pytest.approx(skm.cohen_kappa_score(labels, predicted_labels(probs)))
    # top-k follows sklearn's tie rule instead (higher index first among equal scores)
    assert top_k_accuracy(probs, labels, 1) == pytest.approx(skm.top_k_accuracy_score(labels, probs, k=1))


def test_constant_scores_are_all_undecided() -> None:
    probs = np.full((6, 3), 1 / 3)
    labels = np.array([0, 1, 2, 0, 1, 2])
    assert accuracy(probs, labels) == 0.0
    assert balanced_accuracy(probs, labels) == 0.0
    assert macro_f1(probs, labels) == 0.0


def test_perfect_and_inverted_predictions() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[labels]
    inverted = np.eye(3)[(labels + 1) % 3]
    assert balanced_accuracy(perfect, labels) == 1.0
    assert cohen_kappa(perfect, labels) == 1.0
    assert macro_f1(perfect, labels) == 1.0
    assert balanced_accuracy(inverted, labels) == 0.0
    assert cohen_kappa(inverted, labels) == pytest.approx(skm.cohen_kappa_score(labels, (labels + 1) % 3))


def test_soft_targets_use_their_top_class() -> None:
    probs, labels = random_case(3, n=50)
    soft = 0.6 * np.eye(5)[labels] + 0.1
    assert balanced_accuracy(probs, soft) == pytest.approx(balanced_accuracy(probs, labels))


def test_bad_inputs_are_refused() -> None:
    probs, labels = random_case(1, n=10)
    with pytest.raises(InputError):
        accuracy(probs, np.r_[labels[:-1], -1])  # unlabelled rows must be filtered first
    with pytest.raises(InputError):
        accuracy(probs, labels[:5])
    with pytest.raises(InputError):
        top_k_accuracy(probs, labels, k=6)
    with pytest.raises(UndefinedMetricError):
        cohen_kappa(np.eye(2)[[0, 0]], np.array([0, 0]))
