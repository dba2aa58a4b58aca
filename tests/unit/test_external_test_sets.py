"""External test sets: a whole table as the test split, empty splits named, labels outside the label space counted.

The path a user takes: ``data import ... --split test`` (or ``data split TABLE --all test``), then
``eval classifier MODEL TABLE``, through the real CLI on synthetic ISIC-shaped data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from dermkit.cli import main
from dermkit.data.table import read_manifest, read_table

ISIC_2019 = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
# 12 cases: every HAM class, plus 3 squamous cell carcinomas outside HAM's seven.
LABELS = ["MEL", "MEL", "NV", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "SCC", "SCC"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, untrained_ddx_model: Callable[..., Path]) -> dict[str, Path]:
    """Seven-class HAM10000 models without and with an ``other`` class."""
    root = tmp_path_factory.mktemp("models")
    return {"no-other": untrained_ddx_model(root / "no-other"), "other": untrained_ddx_model(root / "other", other=True)}


@pytest.fixture
def ground_truth(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    """An ISIC-2019-shaped ground-truth CSV with its images in ``images/``."""
    rows = []
    for number, label in enumerate(LABELS):
        image = f"ISIC_{number:07d}"
        make_image(f"{image}.jpg", folder=tmp_path / "images")
        rows.append({"image": image, **{code: float(code == label) for code in ISIC_2019}})
    path = tmp_path / "ISIC_2019_Training_GroundTruth.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    assert main(args) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_import_as_test_set_then_score_every_case(ground_truth, models, tmp_path, capsys):
    table = tmp_path / "external"
    summary, _ = run_json(["data", "import", "isic", str(ground_truth), "-o", f"images={tmp_path / 'images'}",
                           "--out", str(table), "--split", "test", "--json"], capsys)
    assert summary["cases"] == len(LABELS) and summary["split"] == "test"
    assert set(read_table(table)["split"]) == {"test"}
    assert read_manifest(table)["split"] == {"all": "test"}

    result, err = run_json(["eval", "classifier", str(models["no-other"]), str(table), "--n-boot", "20"], capsys)
    assert result["n"] == len(LABELS) - 3  # the three SCCs are excluded, and said so
    outside = result["label_space"]["outside_label_space"]
    assert outside == {"cases": 3, "labels": {"squamous_cell_carcinoma": 3}, "counted_as": "excluded", "excluded": 3}
    assert "3 of 12 cases lie outside the model's label space (squamous_cell_carcinoma 3)" in err
    assert "excluded" in err

    result, err = run_json(["eval", "classifier", str(models["other"]), str(table), "--n-boot", "20"], capsys)
    assert result["n"] == len(LABELS)  # with an 'other' class every case is scored
    assert result["label_space"]["outside_label_space"]["counted_as"] == "other"
    assert result["label_space"]["outside_label_space"]["cases"] == 3
    assert "scored as the model's 'other' class" in err


def test_an_empty_split_names_the_table_and_the_splits_it_has(ground_truth, models, tmp_path, capsys):
    table = tmp_path / "external"
    assert main(["data", "import", "isic", str(ground_truth), "-o", f"images={tmp_path / 'images'}", "--out", str(table),
                 "--split", "test"]) == 0
    capsys.readouterr()
    assert main(["eval", "classifier", str(models["no-other"]), str(table), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert str(table) in err and "no cases in split val" in err and "test 12" in err
    assert "Traceback" not in err


def test_an_unsplit_table_is_scored_with_split_all_or_after_split_all(ground_truth, models, tmp_path, capsys):
    table = tmp_path / "unsplit"
    assert main(["data", "import", "isic", str(ground_truth), "-o", f"images={tmp_path / 'images'}",
                 "--out", str(table)]) == 0
    capsys.readouterr()
    assert main(["eval", "classifier", str(models["other"]), str(table)]) == 2
    assert "12 cases without a split" in capsys.readouterr().err  # was: ValueError: need at least one array

    result, _ = run_json(["eval", "classifier", str(models["other"]), str(table), "--split", "all", "--n-boot", "20"],
                         capsys)
    assert result["n"] == len(LABELS) and result["split"] == ["all"]

    assert main(["data", "split", str(table), "--all", "test"]) == 0
    assert "put all 12 cases" in capsys.readouterr().out
    assert set(read_table(table)["split"]) == {"test"}
    result, _ = run_json(["eval", "classifier", str(models["other"]), str(table), "--n-boot", "20"], capsys)
    assert result["n"] == len(LABELS)


def test_split_names_are_checked(ground_truth, tmp_path, capsys):
    from dermkit.core.errors import InputError
    from dermkit.data.importers import run_import
    from dermkit.data.splits import set_all_splits

    with pytest.raises(InputError, match="split must be one of train, val, test"):
        run_import("isic", ground_truth, tmp_path / "t", split="holdout")
    run_import("isic", ground_truth, tmp_path / "t", options={"images": str(tmp_path / "images")})
    with pytest.raises(InputError, match="split must be one of"):
        set_all_splits(tmp_path / "t", "external")


def test_a_table_of_only_unknown_labels_cannot_be_scored(tmp_path, make_image, models, capsys):
    rows = []
    for number in range(3):
        make_image(f"ISIC_{number:07d}.jpg", folder=tmp_path)
        rows.append({"image": f"ISIC_{number:07d}", **{code: float(code == "SCC") for code in ISIC_2019}})
    pd.DataFrame(rows).to_csv(tmp_path / "GroundTruth.csv", index=False)
    table = tmp_path / "scc"
    assert main(["data", "import", "isic", str(tmp_path / "GroundTruth.csv"), "--out", str(table), "--split", "test"]) == 0
    capsys.readouterr()
    assert main(["eval", "classifier", str(models["no-other"]), str(table)]) == 2
    err = capsys.readouterr().err
    assert "3 lie outside the model's label space (squamous_cell_carcinoma 3)" in err
