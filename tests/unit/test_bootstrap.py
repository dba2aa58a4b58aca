"""Patient-level bootstrap: coverage of the estimate, width vs groups, duplicates, paired tests."""

from __future__ import annotations

import numpy as np
import pytest

from dermkit.core import InputError
from dermkit.evaluate.bootstrap import bootstrap_ci, group_codes, paired_bootstrap
from dermkit.metrics import UndefinedMetricError, accuracy, macro_auroc


def clustered(n_patients: int, rows_each: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cases of one patient share difficulty: all right or all wrong together."""
    rng = np.random.default_rng(seed)
    patient_right = rng.random(n_patients) < 0.7
    labels = rng.integers(0, 2, n_patients * rows_each)
    right = np.repeat(patient_right, rows_each)
    predicted = np.where(right, labels, 1 - labels)
    probs = np.eye(2)[predicted] * 0.8 + 0.1
    return probs, labels, np.repeat(np.arange(n_patients), rows_each)


def width(result: object) -> float:
    return result.high - result.low  # type: ignore[attr-defined]


def test_interval_covers_the_estimate_and_is_reproducible() -> None:
    probs, labels, patients = clustered(100, 3)
    result = bootstrap_ci(accuracy, probs, labels, patients, n_boot=300, seed=1)
    assert result.low <= result.estimate <= result.high
    assert result.estimate == pytest.approx(accuracy(probs, labels))
    assert (result.n_boot, result.n_groups, result.n_skipped) == (300, 100, 0)
    assert result == bootstrap_ci(accuracy, probs, labels, patients, n_boot=300, seed=1)
    assert result != bootstrap_ci(accuracy, probs, labels, patients, n_boot=300, seed=2)


def test_fewer_groups_give_a_wider_interval() -> None:
    probs, labels, patients = clustered(30, 10)
    by_patient = bootstrap_ci(accuracy, probs, labels, patients, n_boot=400)
    by_row = bootstrap_ci(accuracy, probs, labels, None, n_boot=400)
    assert (by_patient.n_groups, by_row.n_groups) == (30, 300)
    assert width(by_patient) > 1.8 * width(by_row)


def test_duplicating_a_patients_rows_does_not_shrink_the_interval() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 80)
    probs = np.clip(0.5 + 0.3 * (2 * labels - 1)[:, None] * [[-1, 1]] + rng.normal(0, 0.3, (80, 2)), 0, 1)
    patients = np.arange(80)
    once = bootstrap_ci(macro_auroc, probs, labels, patients, n_boot=400)
    copies = np.repeat(np.arange(80), 5)  # every patient's case now appears five times
    grouped = bootstrap_ci(macro_auroc, probs[copies], labels[copies], patients[copies], n_boot=400)
    rows = bootstrap_ci(macro_auroc, probs[copies], labels[copies], None, n_boot=400)
    assert grouped.n_groups == 80
    assert width(grouped) == pytest.approx(width(once), rel=0.2)
    assert width(rows) < 0.7 * width(once)  # what row resampling would wrongly claim


def test_undefined_resamples_are_skipped_and_counted() -> None:
    labels = np.array([1] + [0] * 9)
    probs = np.c_[1 - np.linspace(0, 1, 10), np.linspace(0, 1, 10)]
    result = bootstrap_ci(macro_auroc, probs, labels, n_boot=200)
    assert 0 < result.n_skipped < 200  # resamples without the single positive have no AUROC
    assert np.isfinite(result.low) and np.isfinite(result.high)
    with pytest.raises(UndefinedMetricError):
        bootstrap_ci(macro_auroc, probs[1:], labels[1:], n_boot=10)


def test_missing_patient_ids_are_their_own_groups() -> None:
    codes = group_codes(["a", None, "a", np.nan, "b"], 5)
    assert codes[0] == codes[2]
    assert len(set(codes.tolist())) == 4
    with pytest.raises(InputError):
        group_codes(["a", "b"], 3)


def test_paired_bootstrap_detects_a_real_difference_only() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 400)
    noise = rng.normal(size=(400, 3))
    strong = noise + 1.5 * np.eye(3)[labels]
    weak = noise + 0.6 * np.eye(3)[labels]
    patients = np.repeat(np.arange(200), 2)
    real = paired_bootstrap(macro_auroc, strong, weak, labels, patients, n_boot=300)
    assert real.estimate > 0 and real.low > 0
    assert real.p_value < 0.01
    assert real.estimate == pytest.approx(real.estimate_a - real.estimate_b)
    other_noise = rng.normal(size=(400, 3)) + 1.5 * np.eye(3)[labels]  # same quality, other errors
    null = paired_bootstrap(macro_auroc, strong, other_noise, labels, patients, n_boot=300)
    assert null.low < 0 < null.high
    assert null.p_value > 0.05
    with pytest.raises(InputError):
        paired_bootstrap(macro_auroc, strong, weak[:10], labels, n_boot=10)
