"""A tiny suite end to end with the real ``tiny-clip``: predictions, results and report on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from dermkit.cli import main
from dermkit.data.importers import run_import
from dermkit.data.predictions import read_predictions
from dermkit.data.splits import split_table
from dermkit.data.synthetic import write_synthetic_ham
from dermkit.data.table import read_table

torch.set_num_threads(1)

SUITE = """\
name: tiny
options:
  bootstrap: 30
  strata: [sex, age]
  strata_metrics: [balanced_accuracy, auroc]
  min_stratum: 3
  hierarchy_levels: [2]
  cache_dir: cache
  workers: 0
datasets:
  syn:
    table: table
    classes: ham10000
models:
  - tiny-clip
tasks:
  zs:
    type: zero-shot
  probe:
    type: linear-probe
    regimes: [full, shot:2]
    seeds: [0, 1]
    cs: [1.0]
  retrieval:
    type: retrieval
    captions_per_case: 2
  mel:
    type: binary
    from: probe
    positive: [melanoma]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Import a synthetic HAM10000-layout set, split it by lesion, run the suite with the CLI."""
    root = tmp_path_factory.mktemp("suite")
    source = write_synthetic_ham(root / "source", n_cases=56, size=32)
    run_import("ham10000", source, root / "table")
    split_table(root / "table", by="lesion", val=0.25, test=0.35, seed=0)
    (root / "suite.yaml").write_text(SUITE)
    assert main(["eval", str(root / "suite.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def test_results_hold_intervals_strata_and_ontology_levels(run_dir: Path) -> None:
    document = json.loads((run_dir / "results.json").read_text())
    assert document["status"] == "finished" and document["datasets"]["syn"]["cases"] == 56
    by_task = {record["task"]: record for record in document["results"]}
    assert set(by_task) == {"zs", "probe", "retrieval", "mel"}
    probe = by_task["probe"]
    balanced = probe["metrics"]["balanced_accuracy"]
    assert balanced["low"] <= balanced["estimate"] <= balanced["high"] and balanced["n_boot"] == 30
    test_cases = read_table(run_dir.parent / "table").query("split == 'test'")
    assert probe["n"] == len(test_cases)
    # HAM10000 has lesion ids and no patient ids: the bootstrap resamples lesions, not images.
    assert balanced["n_groups"] == test_cases["lesion_id"].nunique() < probe["n"]
    assert set(probe["strata"]) == {"sex", "age"}
    sex = probe["strata"]["sex"]["balanced_accuracy"]
    assert {row["stratum"] for row in sex["rows"]} <= {"female", "male"}
    assert sum(row["n"] for row in sex["rows"]) == probe["n"]
    eligible = [row["estimate"] for row in sex["rows"] if row["eligible"]]
    if len(eligible) == 2:
        gap = sex["gap"]
        assert gap["estimate"] == pytest.approx(max(eligible) - min(eligible))
        assert gap["low"] <= gap["estimate"] <= gap["high"] and {gap["best"], gap["worst"]} == {"female", "male"}
    family = probe["hierarchy"]["2"]
    assert "melanocytic_neoplasm" in family["classes"] and len(family["classes"]) == 4
    assert family["metrics"]["accuracy"]["estimate"] >= probe["metrics"]["accuracy"]["estimate"]
    assert set(probe["details"]["regimes"]) == {"full", "shot:2"}
    assert len(probe["details"]["regimes"]["shot:2"]["runs"]) == 2
    mel = by_task["mel"]
    assert mel["threshold"]["chosen_on"] == "val" and mel["threshold"]["positive"] == "melanoma"
    assert 0 <= mel["metrics"]["auroc"]["estimate"] <= 1
    recall = by_task["retrieval"]["metrics"]
    assert recall["image_to_text_R@1"]["estimate"] <= recall["image_to_text_R@10"]["estimate"]


def test_predictions_tables_per_task_model_and_dataset(run_dir: Path) -> None:
    probe = read_predictions(run_dir / "predictions/probe/tiny-clip/syn.parquet")
    assert probe.model_id == "tiny-clip" and len(probe.classes) == 7
    assert set(probe.frame["split"]) == {"val", "test"}, "val rows are kept for thresholds"
    np.testing.assert_allclose(probe.probs().sum(axis=1), 1.0)
    mel = read_predictions(run_dir / "predictions/mel/tiny-clip/syn.parquet")
    assert mel.classes == ("rest", "melanoma")
    melanoma = probe.classes.index("melanoma")
    np.testing.assert_allclose(mel.probs()[:, 1], probe.probs()[:, melanoma])
    assert ((mel.labels() == 1) == (probe.labels() == melanoma)).all()
    assert (run_dir / "predictions/retrieval/tiny-clip/syn.ranks.parquet").is_file()
    assert (run_dir / "predictions/zs/tiny-clip/syn.parquet").is_file()


def test_report_is_written_from_the_run_alone(run_dir: Path, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--out", str(html)]) == 0
    text = html.read_text()
    assert "http://" not in text and "https://" not in text
    assert text.count('src="data:image/png;base64,') == text.count("<img")
    assert "ROC: melanoma vs rest" in text and "confusion" in text and "reliability" in text
    assert "at ontology level 2" in text and "shot:2" in text
    markdown = tmp_path / "report.md"
    pictures = [line.split("](")[1].rstrip(")") for line in markdown.read_text().splitlines() if line.startswith("![")]
    assert pictures and all((tmp_path / picture).is_file() for picture in pictures)
    assert len(pictures) == text.count("<img")


def test_precomputed_embeddings_are_probed_like_a_model(run_dir: Path) -> None:
    """``embeddings:PATH.npy`` + ``PATH.parquet``: a probe on planted class directions is near perfect."""
    import pandas as pd

    from dermkit.data.table import read_table

    root = run_dir.parent
    cases = read_table(root / "table")
    rng = np.random.default_rng(0)
    codes = pd.factorize(cases["diagnosis_id"])[0]
    vectors = rng.normal(scale=0.05, size=(len(cases), 16)) + np.eye(16)[codes]
    np.save(root / "emb.npy", vectors.astype(np.float32))
    cases[["case_id"]].to_parquet(root / "emb.parquet")
    (root / "emb-suite.yaml").write_text(
        "options: {bootstrap: 10, strata: [sex]}\n"
        "datasets:\n  syn: {table: table, classes: ham10000}\n"
        "models: [embeddings:emb.npy]\n"
        "tasks:\n  probe: {type: linear-probe, regimes: [full], seeds: [0], cs: [10.0]}\n"
    )
    assert main(["eval", str(root / "emb-suite.yaml"), "--out", str(root / "emb-run"), "--quiet"]) == 0
    records = json.loads((root / "emb-run" / "results.json").read_text())["results"]
    assert [(record["task"], record["model"]) for record in records] == [("probe", "embeddings:emb.npy")]
    assert records[0]["metrics"]["accuracy"]["estimate"] == pytest.approx(1.0)
