"""Cross-check against the ISIC challenge's own scorer (``isic-challenge-scoring`` 5.6).

Ground truth and predictions go through our ISIC CSV export and are scored by the official
package; balanced accuracy, per-class and macro AUC, AP, partial AUC above 80 % sensitivity and
the thresholded rates must agree with ours. Conventions found in the scorer's source:

- a row whose top probability is tied is labelled ``undecided`` and counts as wrong in balanced
  accuracy: ours does the same (:data:`dermkit.metrics.UNDECIDED`);
- ``auc_sens_80`` is the area *under* the ROC curve over the FPR range where TPR ≥ 0.8 (max 1),
  our ``partial_auc_above_tpr(..., baseline="zero")``; our default subtracts the 0.8 floor
  (max 0.2, the ISIC 2024 definition);
- per-class rates call a case positive when its probability is > 0.5 and score an undefined rate
  as 1.0, where ours is NaN;
- a class absent from the ground truth makes the scorer's AUC fail; ours skips and reports it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dermkit.data.predictions import Predictions
from dermkit.evaluate.isic import to_isic_csv
from dermkit.metrics import (
    auroc_per_class,
    average_precision_per_class,
    balanced_accuracy,
    macro_auroc,
    macro_average_precision,
    partial_auc_per_class,
    rates_at_threshold,
)
from dermkit.metrics.binary import partial_auc_above_tpr

isic = pytest.importorskip("isic_challenge_scoring")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(autouse=True)
def _pandas3_applymap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scorer's CSV check calls ``DataFrame.applymap``, removed in pandas 3 (renamed ``map``)."""
    if not hasattr(pd.DataFrame, "applymap"):
        monkeypatch.setattr(pd.DataFrame, "applymap", pd.DataFrame.map, raising=False)


CLASSES = ("melanoma", "melanocytic_nevus", "basal_cell_carcinoma", "actinic_keratosis", "benign_keratosis",
           "dermatofibroma", "vascular_neoplasm")  # the ham10000 label set: the ISIC 2018 columns
TOLERANCE = 1e-9


def isic_score(probs: np.ndarray, labels: np.ndarray, tmp_path: Path) -> object:
    """Score through the ISIC CSV files, as a challenge submission would be."""
    frame = pd.DataFrame(
        {"case_id": [f"ISIC_{i:07d}" for i in range(len(labels))], "label": labels, "probs": list(probs)}
    )
    predictions = Predictions(frame, "test-model", CLASSES[: probs.shape[1]])
    truth_csv, prediction_csv = tmp_path / "truth.csv", tmp_path / "prediction.csv"
    to_isic_csv(predictions, truth_csv, truth=True)
    to_isic_csv(predictions, prediction_csv)
    return isic.ClassificationScore.from_file(truth_csv, prediction_csv, isic.ClassificationMetric.BALANCED_ACCURACY)


def assert_agrees(probs: np.ndarray, labels: np.ndarray, tmp_path: Path) -> None:
    score = isic_score(probs, labels, tmp_path)
    per_category = score.per_category  # type: ignore[attr-defined]
    assert balanced_accuracy(probs, labels) == pytest.approx(score.aggregate["balanced_accuracy"], abs=TOLERANCE)  # type: ignore[attr-defined]
    np.testing.assert_allclose(auroc_per_class(probs, labels).values, per_category["auc"], atol=TOLERANCE)
    np.testing.assert_allclose(average_precision_per_class(probs, labels).values, per_category["ap"], atol=TOLERANCE)
    assert macro_auroc(probs, labels) == pytest.approx(score.macro_average["auc"], abs=TOLERANCE)  # type: ignore[attr-defined]
    assert macro_average_precision(probs, labels) == pytest.approx(score.macro_average["ap"], abs=TOLERANCE)  # type: ignore[attr-defined]
    isic_pauc = [partial_auc_above_tpr(probs[:, c], labels == c, 0.8, baseline="zero") for c in range(probs.shape[1])]
    np.testing.assert_allclose(isic_pauc, per_category["auc_sens_80"], atol=TOLERANCE)
    # our default (max 0.2) is the scorer's value minus the rectangle under TPR = 0.8
    assert np.all(partial_auc_per_class(probs, labels).values <= np.asarray(isic_pauc) + TOLERANCE)
    above_half = np.nextafter(0.5, 1.0)  # the scorer calls "> 0.5" positive; ours ">= threshold"
    for c in range(probs.shape[1]):
        rates = rates_at_threshold(probs[:, c], labels == c, above_half)
        for ours, name in (
            (rates.sensitivity, "sensitivity"),
            (rates.specificity, "specificity"),
            (rates.ppv, "ppv"),
            (rates.npv, "npv"),
        ):
            expected = per_category[name].iloc[c]
            assert (ours if np.isfinite(ours) else 1.0) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("seed", range(3))
def test_random_predictions_agree_with_isic(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    n = 1200
    labels = rng.choice(len(CLASSES), n, p=[0.15, 0.5, 0.1, 0.08, 0.1, 0.03, 0.04])
    probs = rng.dirichlet(np.ones(len(CLASSES)), n) + rng.uniform(0, 1.5) * np.eye(len(CLASSES))[labels]
    probs = probs / probs.sum(axis=1, keepdims=True)
    probs[:50] = np.round(probs[:50], 1)  # some tied scores within columns, some tied tops
    assert_agrees(probs, labels, tmp_path)


def test_all_tied_scores_are_undecided(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    probs = np.full((8, 3), 1 / 3)
    score = isic_score(probs, labels, tmp_path)
    assert score.aggregate["balanced_accuracy"] == 0.0  # type: ignore[attr-defined]
    assert balanced_accuracy(probs, labels) == 0.0
    assert_agrees(probs, labels, tmp_path)


def test_partly_tied_tops(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [[0.5, 0.5, 0.0], [0.6, 0.3, 0.1], [0.4, 0.4, 0.2], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.4, 0.4]]
    )
    assert balanced_accuracy(probs, labels) == pytest.approx(0.5)
    assert_agrees(probs, labels, tmp_path)


@pytest.mark.parametrize("inverted", [False, True])
def test_perfect_and_inverted_predictions(inverted: bool, tmp_path: Path) -> None:
    labels = np.arange(30) % 3
    onehot = np.eye(3)[labels]
    probs = (1 - onehot) / 2 if inverted else onehot
    assert_agrees(probs, labels, tmp_path)


# -- the ISIC 2018 path a user takes: import the ground truth as a test set, score, submit ---------

ISIC_2018 = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ZERO_WEIGHT = "ISIC_0035068"


def test_the_scorer_gives_isic_0035068_zero_weight_and_so_does_dermkit(tmp_path: Path) -> None:
    from dermkit.evaluate.isic import without_zero_weight

    # Every case right except ISIC_0035068 (a vascular lesion called a nevus): the rule changes the figure.
    # Rows are in image order, as in the released ground truth: the scorer sorts its probabilities
    # by image but not its weights, so in a file out of that order the zero weight lands on another row.
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6])
    probs = np.eye(len(CLASSES))[labels] * 0.9 + 0.1 / len(CLASSES)
    probs[-1] = np.eye(len(CLASSES))[1] * 0.9 + 0.1 / len(CLASSES)
    ids = [f"isic:ISIC_{34524 + i:07d}" for i in range(len(labels))]
    ids[-1] = f"isic:{ZERO_WEIGHT}"
    frame = pd.DataFrame({"case_id": ids, "label": labels, "probs": list(probs), "source": "isic"})
    predictions = Predictions(frame, "m", CLASSES)
    truth_csv, prediction_csv = tmp_path / "truth.csv", tmp_path / "prediction.csv"
    assert to_isic_csv(predictions, truth_csv, truth=True) == 2018
    to_isic_csv(predictions, prediction_csv)
    scorer = isic.ClassificationScore.from_file(truth_csv, prediction_csv, isic.ClassificationMetric.BALANCED_ACCURACY)
    theirs = scorer.aggregate["balanced_accuracy"]  # type: ignore[attr-defined]
    scored, note = without_zero_weight(predictions)
    assert note is not None and note["cases"] == [f"isic:{ZERO_WEIGHT}"]
    assert balanced_accuracy(scored.probs(), scored.labels()) == pytest.approx(theirs, abs=TOLERANCE)
    assert theirs == 1.0 and balanced_accuracy(probs, labels) < 1.0  # without the rule the figures differ


def test_cli_on_an_isic_2018_ground_truth_agrees_with_the_scorer(tmp_path: Path, make_image, untrained_ddx_model,
                                                                   capsys) -> None:
    import json

    from dermkit.cli import main

    rng = np.random.default_rng(0)
    images = [f"ISIC_{34524 + i:07d}" for i in range(27)] + [ZERO_WEIGHT]
    labels = [*np.repeat(np.arange(len(ISIC_2018)), 4)]
    rng.shuffle(labels)
    truth = pd.DataFrame({"image": images, **{code: [float(label == c) for label in labels]
                                              for c, code in enumerate(ISIC_2018)}})
    truth_csv = tmp_path / "ISIC2018_Task3_Test_GroundTruth.csv"
    truth.to_csv(truth_csv, index=False)
    for image in images:
        make_image(f"{image}.jpg", folder=tmp_path / "images")

    model = untrained_ddx_model(tmp_path / "model")  # seven HAM10000 classes: the 2018 columns

    table, submission = tmp_path / "isic2018", tmp_path / "submission.csv"
    assert main(["data", "import", "isic", str(truth_csv), "-o", f"images={tmp_path / 'images'}", "--out", str(table),
                 "--split", "test"]) == 0
    capsys.readouterr()
    assert main(["eval", "classifier", str(model), str(table), "--isic-csv", str(submission), "--n-boot", "20",
                 "--out", str(tmp_path / "predictions.parquet")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["isic_csv"]["edition"] == 2018 and ZERO_WEIGHT in captured.err
    assert result["isic_zero_weight"]["cases"] == [f"isic:{ZERO_WEIGHT}"]
    assert result["n"] == len(images) - 1
    written = pd.read_csv(submission)
    assert list(written.columns) == ["image", *ISIC_2018] and sorted(written["image"]) == sorted(images)

    scorer = isic.ClassificationScore.from_file(truth_csv, submission, isic.ClassificationMetric.BALANCED_ACCURACY)
    theirs = scorer.aggregate["balanced_accuracy"]  # type: ignore[attr-defined]
    assert result["metrics"]["balanced_accuracy"]["estimate"] == pytest.approx(theirs, abs=TOLERANCE)
