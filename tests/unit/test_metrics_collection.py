"""The one metric collection: its tie rules, the soft reference, and intervals and strata in every task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from test_eval_tasks import GREEN, RED, FakeLoaded, make_table

from dermkit.data.predictions import Predictions
from dermkit.evaluate import concepts, linear_probe, retrieval, zeroshot
from dermkit.evaluate.metrics.collection import metric_fns, score_predictions
from dermkit.metrics import top_k_accuracy

CLASSES = ("melanoma", "melanocytic_nevus", "seborrheic_keratosis", "basal_cell_carcinoma")
FAST = {"n_boot": 40, "min_stratum": 4}


def _predictions(probs: list[list[float]], target: list[list[float]] | None = None, **fields: list) -> Predictions:
    n = len(probs)
    labels = np.argmax(target, axis=1) if target is not None else fields.pop("label")
    frame = pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], **fields})
    return Predictions.from_cases(frame, np.array(probs, dtype=float), labels, "m", CLASSES,
                                  None if target is None else np.array(target, dtype=float))


def test_top_k_is_against_the_soft_reference_with_the_documented_tie_rules() -> None:
    # case 0: the reference's top is tied (melanoma, nevus); the model ranks nevus first -> hit at 1
    # case 1: the model ties melanoma and nevus at the top; the higher class index (nevus) ranks first,
    #         and the reference's top is melanoma -> miss at 1, hit at 3
    # case 2: reference top is BCC, model's third -> hit at 3 only
    probs = [[0.3, 0.5, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1], [0.5, 0.2, 0.05, 0.25]]
    target = [[0.4, 0.4, 0.2, 0.0], [0.6, 0.2, 0.0, 0.2], [0.0, 0.3, 0.0, 0.7]]
    result = score_predictions(_predictions(probs, target), n_boot=20, strata=())
    metrics = {name: entry["estimate"] for name, entry in result["metrics"].items()}
    assert result["reference"] == "differential"
    assert metrics["top1_accuracy"] == pytest.approx(1 / 3)
    assert metrics["top3_accuracy"] == pytest.approx(1.0)
    # the arg-max label of case 0 is melanoma (first of the tie), so the old label-based top-1 said "wrong"
    assert top_k_accuracy(np.array(probs), np.argmax(target, axis=1), k=1) == pytest.approx(0.0)
    # reference conditions found in the model's top 3: 3/3, 2/3 (nevus, melanoma; not BCC), 2/2
    assert metrics["average_top3_sensitivity"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    # accuracy is of the arg-max label (melanoma for case 0's tied reference) and a tied model top is
    # undecided, hence wrong: no case is right there, while top-1 accuracy against the reference is 1/3
    assert metrics["accuracy"] == 0.0


def test_single_label_tables_get_the_usual_set_and_the_operating_point() -> None:
    probs = [[0.7, 0.1, 0.1, 0.1], [0.2, 0.6, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]
    result = score_predictions(_predictions(probs, label=[0, 1, 1, 3]), n_boot=20, strata=())
    assert result["reference"] == "label"
    assert "average_overlap" not in result["metrics"]
    assert {"balanced_accuracy", "macro_auroc", "ece", "melanoma_sensitivity", "melanoma_specificity"} <= set(
        result["metrics"])
    assert result["metrics"]["melanoma_sensitivity"]["estimate"] == 1.0  # the one melanoma is called
    assert result["metrics"]["melanoma_specificity"]["estimate"] == pytest.approx(2 / 3)  # case 2 is called too
    at_threshold = metric_fns(CLASSES, threshold=0.65)["melanoma_specificity"]
    assert at_threshold(np.array(probs), np.eye(4)[[0, 1, 1, 3]]) == 1.0  # 0.6 < 0.65: no longer called
    assert result["operating_point"] == {"positive": "melanoma", "threshold": None, "rule": "arg-max decision"}


def planted(n: int = 12) -> Predictions:
    """Right on Fitzpatrick I-II, wrong on V-VI, two cases of III-IV (too few to score)."""
    fitzpatrick = [1, 2] * (n // 2) + [5, 6] * (n // 2) + [3, 4]
    labels = np.arange(len(fitzpatrick)) % 4
    right = np.eye(4)[labels] * 0.7 + 0.075
    wrong = np.eye(4)[(labels + 1) % 4] * 0.7 + 0.075
    probs = np.where(np.array(fitzpatrick)[:, None] >= 5, wrong, right)
    frame = pd.DataFrame({"case_id": [f"c{i}" for i in range(len(labels))], "fitzpatrick": fitzpatrick,
                          "patient_id": [f"p{i // 2}" for i in range(len(labels))],
                          "sex": ["female", "male"] * (len(labels) // 2)})
    return Predictions.from_cases(frame, probs, labels, "m", CLASSES)


def test_per_group_block_shows_a_planted_gap_with_its_interval_and_keeps_small_groups() -> None:
    result = score_predictions(planted(), **FAST)
    assert result["resampled_by"] == "patient"
    assert result["metrics"]["balanced_accuracy"]["n_groups"] == 13
    block = result["strata"]["fitzpatrick"]["balanced_accuracy"]
    rows = {row["stratum"]: row for row in block["rows"]}
    assert rows["I-II"]["estimate"] == 1.0 and rows["V-VI"]["estimate"] == 0.0
    assert rows["III-IV"]["n"] == 2 and not rows["III-IV"]["eligible"]
    gap = block["gap"]
    assert (gap["best"], gap["worst"], gap["estimate"]) == ("I-II", "V-VI", 1.0)
    assert gap["low"] == gap["high"] == 1.0  # every resample keeps the planted difference
    assert set(result["strata"]) == {"fitzpatrick", "sex"}, "only the fields the table has"
    sex = result["strata"]["sex"]["balanced_accuracy"]["gap"]
    assert sex["low"] <= sex["estimate"] <= sex["high"]
    json.dumps(result, allow_nan=False)  # JSON-ready: no NaN, no numpy scalars


# -- every task's output carries intervals and the per-group block --------------------------------

def _rows(colours: dict[str, tuple[int, int, int]], split: str = "test", n: int = 6) -> list[dict]:
    """Cases right-coloured on Fitzpatrick I-II and swapped on V-VI (the fake embeds an image as its colour)."""
    swapped = dict(zip(colours, reversed(list(colours.values()))))
    rows = []
    for i in range(n):
        for dx, colour in colours.items():
            rows.append({"colour": colour, "diagnosis_id": dx, "split": split, "fitzpatrick": 1 + i % 2,
                         "patient_id": f"{split}-a{i}-{dx}"})
            rows.append({"colour": swapped[dx], "diagnosis_id": dx, "split": split, "fitzpatrick": 5 + i % 2,
                         "patient_id": f"{split}-b{i}-{dx}"})
    return rows


COLOURS = {"melanoma": RED, "melanocytic_nevus": GREEN}


def _fitzpatrick_gap(report: dict, metric: str) -> dict:
    block = report["strata"]["fitzpatrick"][metric]
    rows = {row["stratum"]: row["estimate"] for row in block["rows"]}
    assert rows["I-II"] > rows["V-VI"]
    for entry in report["metrics"].values():
        assert entry["low"] <= entry["estimate"] <= entry["high"]
    return block["gap"]


def test_zero_shot_report_shows_the_planted_skin_type_gap(tmp_path: Path) -> None:
    table = make_table(tmp_path, _rows(COLOURS))
    report = zeroshot.zero_shot_report(FakeLoaded(), table, label_set=list(COLOURS), cache_dir=tmp_path / "c", **FAST)
    gap = _fitzpatrick_gap(report, "balanced_accuracy")
    assert gap["estimate"] == 1.0 and gap["low"] > 0.5


def test_probe_report_scores_its_test_predictions_with_strata(tmp_path: Path) -> None:
    rows = [r for r in _rows(COLOURS, "train", 3) if r["fitzpatrick"] <= 2]
    rows += [r for r in _rows(COLOURS, "val", 3) if r["fitzpatrick"] <= 2] + _rows(COLOURS)
    table = make_table(tmp_path, rows)
    report = linear_probe.linear_probe_report(FakeLoaded(), table, regimes=("full",), seeds=(0,),
                                              cache_dir=tmp_path / "c", **FAST)
    assert report["n"] == report["n_test"] == 24
    assert _fitzpatrick_gap(report, "balanced_accuracy")["estimate"] == 1.0


def test_retrieval_report_has_recall_intervals_and_strata(tmp_path: Path) -> None:
    rows = []
    for row in _rows({"melanoma": RED, "melanocytic_nevus": RED}):  # red images
        right = row["fitzpatrick"] <= 2
        rows.append({**row, "colour": RED, "caption": "melanoma" if right else "a waxy keratosis"})
    table = make_table(tmp_path, rows)
    report = retrieval.retrieval_report(FakeLoaded(), table, captions_per_case=1, cache_dir=tmp_path / "c", **FAST)
    gap = _fitzpatrick_gap(report, "image_to_text_R@1")
    assert gap["estimate"] == 1.0


def test_concept_report_has_a_mean_auroc_interval_and_strata(tmp_path: Path) -> None:
    table = make_table(tmp_path, _rows(COLOURS))
    ids = [f"c{i}" for i in range(24)]
    fitzpatrick = [row["fitzpatrick"] for row in _rows(COLOURS)]
    colours = [row["colour"] for row in _rows(COLOURS)]
    # the fake scores "papule" on red: annotated where red on I-II, where not red on V-VI
    papule = [int((c == RED) == (f <= 2)) for c, f in zip(colours, fitzpatrick)]
    annotations = pd.DataFrame({"case_id": ids, "Papule": papule})
    report = concepts.concept_report(FakeLoaded(), table, annotations, cache_dir=tmp_path / "c", progress=False,
                                     **FAST)
    gap = _fitzpatrick_gap(report, "mean_auroc")
    assert gap["estimate"] == 1.0 and report["metrics"]["mean_auroc"]["estimate"] == report["mean_auroc"]


def test_every_eval_command_prints_intervals_and_the_per_group_block(tmp_path: Path, make_image,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The real CLI with the real tiny-clip model on a table with skin types and sexes."""
    pytest.importorskip("open_clip")
    from dermkit.cli import main
    from dermkit.data.table import Case, write_table

    classes = ["melanoma", "melanocytic_nevus"]
    cases = [Case(case_id=f"c{i}", image_paths=[str(make_image(f"c{i}.png"))], source="syn",
                  diagnosis_id=classes[i % 2], acquisition="dermoscopic", body_site="back", age=30.0 + i,
                  sex=("female", "male")[(i // 2) % 2], fitzpatrick=(1, 5)[(i // 4) % 2], concepts=["papule"] if i % 3
                  else [], split=("train", "val", "test", "test")[i // 8])
             for i in range(32)]
    table = write_table(cases, tmp_path / "table")
    common = [str(table), "--cache-dir", str(tmp_path / "cache"), "--n-boot", "20", "--min-stratum", "2"]
    for command in (["zeroshot"], ["probe", "--regime", "full", "--seeds", "0"], ["retrieval"], ["concepts"]):
        assert main(["eval", command[0], "tiny-clip", *common, *command[1:]]) == 0, command
        report = json.loads(capsys.readouterr().out)
        assert report["metrics"], command
        for entry in report["metrics"].values():
            assert entry["estimate"] is None or entry["low"] <= entry["estimate"] <= entry["high"], command
        assert {"fitzpatrick", "sex"} <= set(report["strata"]), command
        for block in report["strata"]["fitzpatrick"].values():
            rows = {row["stratum"]: row for row in block["rows"]}
            assert set(rows) == {"I-II", "III-IV", "V-VI"}
            assert rows["III-IV"]["n"] == 0 and not rows["III-IV"]["eligible"], "an empty group shows n = 0"
            assert set(block["gap"]) >= {"estimate", "low", "high", "best", "worst"}
