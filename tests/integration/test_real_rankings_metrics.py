"""The DLS metrics of the metric collection on the real rankings, with made-up predictions (ties included).

Each figure is recomputed here line by line, independently of dermkit's metric code, from the
reference differentials the importer aggregated from the real readers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA  # tests/ is on sys.path under pytest
from dermkit.data.importers import run_import
from dermkit.data.predictions import Predictions
from dermkit.data.table import read_cases
from dermkit.evaluate.metrics.collection import metric_fns, score_predictions

pytestmark = pytest.mark.realdata

RELEASE = SHARED_DATA / "dermatology-rankings"
N_CASES = 300


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], np.ndarray, np.ndarray, dict]:
    if not (RELEASE / "dermatology_selectors.json").exists():
        pytest.skip(f"real data {RELEASE} is absent (tests read ../shared/data beside the checkout)")
    out = tmp_path_factory.mktemp("rankings") / "table"
    run_import("dermatology-rankings", RELEASE, out, check_images=False)
    cases = read_cases(out)[:N_CASES]
    classes = sorted({condition for case in cases for condition in case.differential})
    reference = np.array([[case.differential.get(c, 0.0) for c in classes] for case in cases])
    rng = np.random.default_rng(0)
    probs = rng.random(reference.shape).round(1)  # one decimal: tied scores on every row
    # a third of the cases: the model puts the reference's (first) top condition first, tied with another
    for row in range(0, N_CASES, 3):
        top = int(np.argmax(reference[row]))
        other = (top + 1) % len(classes)
        probs[row, [top, other]] = 2.0
    probs[1] = 0.5  # a model that scores everything the same
    probs = probs / probs.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"case_id": [c.case_id for c in cases]})
    predictions = Predictions.from_cases(frame, probs, reference.argmax(axis=1), "made-up", classes, reference)
    result = score_predictions(predictions, n_boot=20, strata=())
    return classes, probs, reference, result


def model_ranking(scores: np.ndarray) -> list[int]:
    """Best first; among equal scores the higher class index first (the documented tie rule)."""
    return sorted(range(len(scores)), key=lambda c: (-scores[c], -c))


def test_the_release_gives_tied_reference_tops_and_the_table_is_a_differential(scored) -> None:
    _, _, reference, result = scored
    assert result["reference"] == "differential" and result["n"] == N_CASES
    tied_tops = sum((row == row.max()).sum() > 1 for row in reference)
    assert tied_tops > 10, "the real readers tie often: the tie rule matters"


def test_top_k_accuracy_against_the_aggregated_reference_line_by_line(scored) -> None:
    _, probs, reference, result = scored
    for k in (1, 3):
        hits = []
        for scores, weights in zip(probs, reference):
            tops = {c for c in range(len(weights)) if weights[c] == weights.max()}  # any tied top counts
            hits.append(bool(tops & set(model_ranking(scores)[:k])))
        assert result["metrics"][f"top{k}_accuracy"]["estimate"] == pytest.approx(np.mean(hits), abs=1e-12)


def test_average_top3_sensitivity_and_overlap_line_by_line(scored) -> None:
    _, probs, reference, result = scored
    sensitivities, overlaps = [], []
    for scores, weights in zip(probs, reference):
        listed = [c for c in range(len(weights)) if weights[c] > 0]
        model = model_ranking(scores)[:3]
        sensitivities.append(len(set(listed) & set(model)) / len(listed))
        ranked = sorted(listed, key=lambda c: (-weights[c], -c))[:3]
        overlaps.append(np.mean([len(set(model[:d]) & set(ranked[:d])) / d for d in (1, 2, 3)]))
    assert result["metrics"]["average_top3_sensitivity"]["estimate"] == pytest.approx(np.mean(sensitivities))
    assert result["metrics"]["average_overlap"]["estimate"] == pytest.approx(np.mean(overlaps))


def test_a_few_cases_by_hand(scored) -> None:
    """Planted rows: the reference's top tied with another class at the model's top; the all-equal model."""
    classes, probs, reference, _ = scored
    fns = metric_fns(classes, differential=True)
    for row in (0, 3, 6):
        top = int(np.argmax(reference[row]))
        other = (top + 1) % len(classes)
        first = max(top, other)  # of two tied scores the higher class index ranks first
        tops = np.flatnonzero(reference[row] == reference[row].max())
        assert fns["top1_accuracy"](probs[[row]], reference[[row]]) == float(first in tops)
        assert fns["top3_accuracy"](probs[[row]], reference[[row]]) == 1.0
    # the all-equal model ranks the last three classes first
    last_three = {len(classes) - 1, len(classes) - 2, len(classes) - 3}
    tops = set(np.flatnonzero(reference[1] == reference[1].max()))
    assert fns["top3_accuracy"](probs[[1]], reference[[1]]) == float(bool(tops & last_three))
    listed = set(np.flatnonzero(reference[1] > 0))
    assert fns["average_top3_sensitivity"](probs[[1]], reference[[1]]) == pytest.approx(
        len(listed & last_three) / len(listed))
