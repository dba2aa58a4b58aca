"""The report of a run: self-contained HTML and Markdown, built from results.json and predictions only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dermkit.core.errors import InputError
from dermkit.data.predictions import Predictions, write_predictions
from dermkit.evaluate.report import format_ci, write_report
from dermkit.evaluate.runner import run_suite

CLASSES = ("melanoma", "melanocytic_nevus", "basal_cell_carcinoma")


def classification_run(root: Path) -> Path:
    """A run of a model-free suite: metrics of a predictions table written by another tool."""
    rng = np.random.default_rng(0)
    n = 90
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 2.0 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cases = pd.DataFrame({
        "case_id": [f"c{i}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
        "fitzpatrick": rng.integers(1, 7, n), "sex": rng.choice(["female", "male"], n), "split": "test",
        "source": "other-tool",
    })
    write_predictions(Predictions.from_cases(cases, probs, labels, model_id="ddx-model", classes=CLASSES),
                      root / "ddx.parquet")
    (root / "suite.yaml").write_text(
        "options: {bootstrap: 25, strata: [fitzpatrick], strata_metrics: [balanced_accuracy], min_stratum: 5}\n"
        "tasks:\n  ddx: {type: classification, predictions: ddx.parquet}\n"
    )
    run_suite(root / "suite.yaml", root / "run", progress=False)
    return root / "run"


def test_report_shows_the_runs_numbers_and_inlines_every_plot(tmp_path: Path) -> None:
    run = classification_run(tmp_path)
    html, markdown = write_report(run, tmp_path / "out" / "report.html")
    text = html.read_text()
    record = json.loads((run / "results.json").read_text())["results"][0]
    assert record["model"] == "ddx-model" and record["dataset"] == "other-tool" and record["n"] == 90
    assert format_ci(record["metrics"]["balanced_accuracy"]) in text
    assert re.search(r"(src|href)=\"(?!data:)", text) is None, "no external resource of any kind"
    assert "http" not in text
    images = re.findall(r'<img class="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3, "confusion matrix, reliability diagram, Fitzpatrick bars"
    assert "balanced accuracy by fitzpatrick" in text
    rows = record["strata"]["fitzpatrick"]["balanced_accuracy"]["rows"]
    assert {row["stratum"] for row in rows} == {"I-II", "III-IV", "V-VI"}
    for row in rows:  # the per-group table shows results.json's figures, each with its group's size
        assert f"{format_ci(row)} (n={row['n']})" in text
    gap = record["strata"]["fitzpatrick"]["balanced_accuracy"]["gap"]
    assert f"gap by fitzpatrick {format_ci(gap)}" in text and gap["low"] is not None
    assert markdown == tmp_path / "out" / "report.md"
    lines = markdown.read_text().splitlines()
    assert any(format_ci(record["metrics"]["macro_auroc"]) in line for line in lines if line.startswith("| ddx-model"))
    assert len(list((tmp_path / "out" / "report_files").glob("*.png"))) == 3


def test_format_ci_and_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    assert format_ci({"estimate": 0.81234, "low": 0.7, "high": 0.9}) == "0.812 [0.700, 0.900]"
    assert format_ci({"estimate": None}) == "–" and format_ci(None) == "–"
    assert format_ci({"estimate": 0.5}) == "0.500"
    with pytest.raises(InputError, match="not a suite run directory"):
        write_report(tmp_path, tmp_path / "r.html")
