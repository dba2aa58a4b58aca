"""Top-label calibration against sklearn's calibration_curve and hand-computed ECE."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from dermkit.core import InputError
from dermkit.metrics import expected_calibration_error, reliability


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n_bins", [5, 15])
def test_reliability_matches_sklearn_calibration_curve(seed: int, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(4) * 0.7, 500)
    labels = rng.integers(0, 4, 500)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform")
    diagram = reliability(probs, labels, n_bins)
    filled = diagram.count > 0
    np.testing.assert_allclose(diagram.accuracy[filled], accuracy)
    np.testing.assert_allclose(diagram.confidence[filled], mean_confidence)
    assert diagram.count.sum() == 500
    counts = np.bincount(np.searchsorted(diagram.edges[1:-1], confidence), minlength=n_bins)
    expected_ece = np.sum(counts[filled] / 500 * np.abs(accuracy - mean_confidence))
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(expected_ece)


def test_hand_built_ece() -> None:
    # two cases at confidence 0.9 (one right), two at 0.6 (both right), 10 bins
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    diagram = reliability(probs, labels, n_bins=10)
    assert diagram.count[8] == 2 and diagram.count[5] == 2  # 0.9 → (0.8, 0.9], 0.6 → (0.5, 0.6]
    assert expected_calibration_error(probs, labels, 10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_perfectly_calibrated_confident_model_has_zero_ece() -> None:
    labels = np.array([0, 1, 2, 1])
    assert expected_calibration_error(np.eye(3)[labels], labels) == 0.0


def test_logits_are_refused() -> None:
    with pytest.raises(InputError):
        reliability(np.array([[2.0, -1.0], [0.5, 0.3]]), np.array([0, 1]))


def test_float32_rounding_just_above_one_is_accepted_but_real_overflow_is_not() -> None:
    probs = np.array([[1.0000001, 0.0], [0.3, 0.7]], dtype=np.float32)
    assert reliability(probs, np.array([0, 1]), n_bins=5).count.sum() == 2
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        reliability(np.array([[1.2, -0.2], [0.3, 0.7]]), np.array([0, 1]), n_bins=5)
