"""Scoring and paired comparison of two classifiers' predictions tables (the ddx and HAM figures)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dermkit.core.errors import InputError
from dermkit.data.predictions import Predictions
from dermkit.evaluate.ddx_compare import compare
from dermkit.evaluate.metrics.collection import score_predictions
from dermkit.metrics import auroc, balanced_accuracy

CLASSES = ("melanoma", "melanocytic_nevus", "basal_cell_carcinoma")


def _predictions(probs: np.ndarray, labels: np.ndarray, lesions: list[str]) -> Predictions:
    frame = pd.DataFrame({"case_id": [f"c{i}" for i in range(len(labels))], "lesion_id": lesions,
                          "label": labels, "probs": list(probs)})
    return Predictions(frame, "m", CLASSES)


@pytest.fixture
def tables() -> tuple[Predictions, Predictions]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    lesions = [f"l{i // 2}" for i in range(60)]  # two images per lesion, as in HAM10000
    good = np.eye(3)[labels] * 2 + rng.random((60, 3))
    noisy = rng.random((60, 3))
    return _predictions(good / good.sum(1, keepdims=True), labels, lesions), _predictions(noisy, labels, lesions)


def test_score_gives_the_point_estimates_and_resamples_lesions(tables):
    good, _ = tables
    result = score_predictions(good, positive="melanoma", n_boot=200)
    metrics = result["metrics"]
    assert result["n"] == 60 and result["resampled_by"] == "lesion"
    assert metrics["balanced_accuracy"]["n_groups"] == 30
    assert metrics["balanced_accuracy"]["estimate"] == pytest.approx(balanced_accuracy(good.probs(), good.labels()))
    assert metrics["melanoma_auroc"]["estimate"] == pytest.approx(auroc(good.probs()[:, 0], good.labels() == 0))
    entry = metrics["balanced_accuracy"]
    assert entry["low"] <= entry["estimate"] <= entry["high"]


def test_compare_is_paired_and_refuses_mismatched_tables(tables):
    good, noisy = tables
    same = compare(good, good, n_boot=200)
    assert same["difference"] == 0 and same["ci95"] == [0, 0]
    result = compare(good, noisy, n_boot=500)
    assert result["difference"] > 0.3 and result["ci95"][0] > 0 and result["p_value"] < 0.05
    subset = compare(good, noisy, mask=good.labels() != 2, n_boot=100)
    assert subset["cases"] == 40
    with pytest.raises(InputError, match="not in the second"):
        compare(good, noisy.where(np.arange(60) < 30))


def test_complete_history_means_every_question_the_table_asks_is_answered(tmp_path):
    from dermkit.data.table import Case, write_table
    from dermkit.evaluate.ddx_compare import complete_history_mask

    histories = [{"smoke": True, "itch": False}, {"itch": True}, None, {"smoke": None, "itch": True}]
    write_table([Case(case_id=f"c{i}", image_paths=[f"/x/c{i}.jpg"], source="s", history=h)
                 for i, h in enumerate(histories)],
                tmp_path / "table")
    predictions = Predictions(pd.DataFrame({"case_id": ["c3", "c0", "c1", "c2"], "label": [0, 0, 1, 2],
                                            "probs": list(np.eye(3)[[0, 0, 1, 2]])}), "m", CLASSES)
    assert complete_history_mask(predictions, tmp_path / "table").tolist() == [False, True, False, False]
    with pytest.raises(InputError, match="not in the table"):
        complete_history_mask(Predictions(pd.DataFrame({"case_id": ["zz"], "label": [0], "probs": [np.eye(3)[0]]}),
                                          "m", CLASSES), tmp_path / "table")


def test_compare_reports_the_paired_difference_within_each_skin_type_group(tables):
    good, _ = tables
    fitzpatrick = np.array([1, 2, 5] * 20)[:60]  # I-II (40 cases) and V-VI (20 cases)
    frame = good.frame.assign(fitzpatrick=fitzpatrick)
    a = Predictions(frame, "a", CLASSES)
    # b equals a on I-II and is uniform noise on V-VI: the difference is zero there and large on V-VI.
    rng = np.random.default_rng(1)
    b_probs = [p if f < 5 else rng.random(3) for p, f in zip(a.probs(), fitzpatrick)]
    b = Predictions(frame.assign(probs=b_probs), "b", CLASSES)
    result = compare(a, b, n_boot=300)
    groups = {row["stratum"]: row for row in result["strata"]["fitzpatrick"]}
    assert groups["I-II"]["n"] == 40 and groups["I-II"]["difference"] == 0
    assert groups["V-VI"]["n"] == 20 and groups["V-VI"]["difference"] > 0.3 and groups["V-VI"]["ci95"][0] > 0
    small = compare(a, b, n_boot=100, min_stratum=25)
    assert {row["stratum"]: row.get("scored", True) for row in small["strata"]["fitzpatrick"]} == {
        "I-II": True, "V-VI": False}
