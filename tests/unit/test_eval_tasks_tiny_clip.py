"""The task reports and the ``dermkit eval`` commands end to end with the real ``tiny-clip`` model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from dermkit.cli import main
from dermkit.data.predictions import read_predictions
from dermkit.data.table import Case, write_table
from dermkit.evaluate.retrieval import retrieval_report
from dermkit.evaluate.zeroshot import zero_shot_report

torch.set_num_threads(1)
CLASSES = ["melanoma", "melanocytic_nevus", "seborrheic_keratosis"]


@pytest.fixture
def table(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    """Nine labelled dermoscopic cases with the fields captions are built from."""
    cases = [
        Case(case_id=f"c{i}", image_paths=[str(make_image(f"c{i}.png"))], source="syn",
             diagnosis_id=CLASSES[i % 3], acquisition="dermoscopic", body_site="back", age=40.0 + i,
             sex=("female", "male")[i % 2], split="test" if i >= 3 else "train")
        for i in range(9)
    ]
    return write_table(cases, tmp_path / "table")


def test_zero_shot_and_retrieval_reports(table: Path, tmp_path: Path) -> None:
    zero_shot = zero_shot_report("tiny-clip", table, label_set=CLASSES, cache_dir=tmp_path / "cache", n_boot=20)
    assert zero_shot["n"] == 6 and zero_shot["classes"] == CLASSES
    for name in ("top1_accuracy", "top3_accuracy", "balanced_accuracy", "macro_auroc"):
        assert 0.0 <= zero_shot["metrics"][name]["estimate"] <= 1.0
    assert zero_shot["metrics"]["top3_accuracy"]["estimate"] == 1.0, "with three classes the label is in the top 3"

    retrieval = retrieval_report("tiny-clip", table, captions_per_case=2, cache_dir=tmp_path / "cache", n_boot=20)
    assert retrieval["n_images"] == 6 and retrieval["n_texts"] >= 2
    for direction in ("image_to_text", "text_to_image"):
        recalls = [retrieval[direction][f"R@{k}"] for k in (1, 5, 10)]
        assert recalls == sorted(recalls) and recalls[-1] <= 1.0


def test_eval_commands_write_predictions_and_reuse_the_cache(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["eval", "features", "tiny-clip", str(table), "--workers", "0", *cache]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 9
    out = tmp_path / "predictions.parquet"
    assert main(["eval", "zeroshot", "tiny-clip", str(table), "--out", str(out), *cache]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 6
    predictions = read_predictions(out)
    assert predictions.model_id == "tiny-clip" and len(predictions) == 6
    np.testing.assert_allclose(predictions.probs().sum(axis=1), 1.0)
    assert len(list((tmp_path / "cache").iterdir())) == 1, "zero-shot must reuse the extracted features"
    assert main(["eval", "zeroshot", "tiny-clip", str(table), "--split", "val", *cache]) == 2
    assert "no cases in split val" in capsys.readouterr().err
