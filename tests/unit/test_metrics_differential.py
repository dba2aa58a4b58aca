"""Differential metrics against a weighted reference, on hand-built cases and sklearn's top-k."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import top_k_accuracy_score

from dermkit.core import InputError
from dermkit.metrics import average_overlap, average_top_k_sensitivity, differential_top_k_accuracy

# classes: 0 psoriasis, 1 eczema, 2 tinea, 3 lichen planus, 4 urticaria
MODEL = np.array(
    [
        [0.50, 0.30, 0.10, 0.05, 0.05],  # ranked 0, 1, 2, 3, 4
        [0.10, 0.20, 0.30, 0.35, 0.05],  # ranked 3, 2, 1, 0, 4
    ]
)
REFERENCE = np.array(
    [
        [0.0, 0.6, 0.4, 0.0, 0.0],  # eczema, then tinea
        [0.0, 0.0, 0.0, 0.0, 1.0],  # urticaria only
    ]
)


def test_top_k_accuracy_uses_reference_top() -> None:
    assert differential_top_k_accuracy(MODEL, REFERENCE, 1) == 0.0
    assert differential_top_k_accuracy(MODEL, REFERENCE, 2) == 0.5
    assert differential_top_k_accuracy(MODEL, REFERENCE, 5) == 1.0


def test_top_k_accuracy_equals_sklearn_for_single_label_reference() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 200)
    probs = rng.dirichlet(np.ones(6), 200)
    for k in (1, 3):
        assert differential_top_k_accuracy(probs, np.eye(6)[labels], k) == pytest.approx(
            top_k_accuracy_score(labels, probs, k=k)
        )


def test_average_top_k_sensitivity() -> None:
    # case 1: top-3 {0,1,2} holds both reference conditions (1.0); case 2: urticaria missed (0.0)
    assert average_top_k_sensitivity(MODEL, REFERENCE, 3) == pytest.approx(0.5)
    # top-2 {0,1} holds eczema only (0.5)
    assert average_top_k_sensitivity(MODEL, REFERENCE, 2) == pytest.approx(0.25)


def test_average_overlap() -> None:
    # case 1, k=3: M=[0,1,2], R=[1,2]: depth1 0/1, depth2 {0,1}∩{1,2}=1 → 1/2, depth3 {0,1,2}∩{1,2}=2 → 2/3
    case_1 = (0 + 1 / 2 + 2 / 3) / 3
    # case 2: urticaria is ranked last by the model, so no overlap up to depth 3
    assert average_overlap(MODEL, REFERENCE, 3) == pytest.approx(case_1 / 2)
    identical = np.array([[0.5, 0.3, 0.2, 0.0, 0.0]])
    assert average_overlap(identical, identical, 3) == pytest.approx(1.0)


def test_reference_needs_a_condition() -> None:
    with pytest.raises(InputError):
        average_overlap(MODEL, np.zeros_like(REFERENCE))
    with pytest.raises(InputError):
        average_top_k_sensitivity(MODEL, REFERENCE[:, :3])
