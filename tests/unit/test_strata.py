"""Metrics per skin-type, sex, age and source stratum: grouping, counts, CIs and the gap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dermkit.core import InputError
from dermkit.data.predictions import Predictions
from dermkit.evaluate.strata import UNKNOWN, stratify, stratum_of
from dermkit.metrics import accuracy, expected_calibration_error, macro_auroc


def make_predictions() -> Predictions:
    """60 cases; the model is right on types I-IV and half the time on V-VI."""
    rng = np.random.default_rng(0)
    fitzpatrick = np.array([1, 2] * 10 + [3, 4] * 10 + [5, 6] * 8 + [None] * 4, dtype=object)
    labels = rng.integers(0, 2, 60)
    right = np.ones(60, dtype=bool)
    right[40:48] = False  # the first four V-VI patients (two cases each) are wrong
    predicted = np.where(right, labels, 1 - labels)
    frame = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(60)],
            "patient_id": [f"p{i // 2}" for i in range(60)],
            "fitzpatrick": fitzpatrick,
            "monk": rng.integers(1, 11, 60),
            "age": np.r_[np.full(30, 25.0), np.full(29, 65.0), np.nan],
            "sex": ["female", "male"] * 30,
            "label": labels,
            "probs": list(np.eye(2)[predicted] * 0.8 + 0.1),
        }
    )
    return Predictions(frame, "m", ("a", "b"))


def test_stratum_names() -> None:
    frame = pd.DataFrame(
        {
            "fitzpatrick": [1, 2, 3, 4, 5, 6, None],
            "monk": [1, 3, 4, 7, 8, 10, None],
            "age": [5, 18, 39.9, 40, 79, 80, None],
        }
    )
    assert stratum_of(frame, "fitzpatrick").tolist() == ["I-II", "I-II", "III-IV", "III-IV", "V-VI", "V-VI", UNKNOWN]
    assert stratum_of(frame, "monk").tolist() == ["1-3", "1-3", "4-7", "4-7", "8-10", "8-10", UNKNOWN]
    assert stratum_of(frame, "age").tolist() == ["<18", "18-39", "18-39", "40-59", "60-79", "80+", UNKNOWN]
    with pytest.raises(InputError):
        stratum_of(frame, "case_id")


def test_fitzpatrick_strata_counts_estimates_and_gap() -> None:
    strata = stratify(make_predictions(), accuracy, "fitzpatrick", n_boot=200)
    table = strata.table.set_index("stratum")
    assert table["n"].to_dict() == {"III-IV": 20, "I-II": 20, "V-VI": 16, UNKNOWN: 4}
    assert table.loc["V-VI", "estimate"] == pytest.approx(0.5)
    assert table.loc["I-II", "estimate"] == 1.0
    assert table.loc["V-VI", "n_groups"] == 8
    assert table.loc["V-VI", "low"] < 0.5 < table.loc["V-VI", "high"]
    assert not table.loc[UNKNOWN, "eligible"]
    assert strata.gap == pytest.approx(0.5)
    assert strata.worst == "V-VI" and strata.best in {"I-II", "III-IV"}


def test_small_strata_are_left_out_of_the_gap() -> None:
    strata = stratify(make_predictions(), accuracy, "fitzpatrick", min_n=17, n_boot=50)
    assert strata.table.set_index("stratum").loc["V-VI", "eligible"] == False
    assert strata.gap == 0.0  # I-II and III-IV are both perfect
    assert np.isnan(stratify(make_predictions(), accuracy, "fitzpatrick", min_n=100, n_boot=10).gap)


def test_lower_is_better_metrics_and_undefined_strata() -> None:
    predictions = make_predictions()
    ece = stratify(predictions, expected_calibration_error, "age", n_boot=50, higher_is_better=False)
    assert ece.best == "18-39"  # young cases are all right at confidence 0.9 → ECE 0.1
    # one class only within a stratum: AUROC undefined, reported as NaN, not eligible
    frame = predictions.frame.assign(label=np.where(predictions.frame["sex"] == "male", 1, predictions.frame["label"]))
    auroc = stratify(Predictions(frame, "m", ("a", "b")), macro_auroc, "sex", n_boot=20).table.set_index("stratum")
    assert np.isnan(auroc.loc["male", "estimate"]) and not auroc.loc["male", "eligible"]
