"""The validated number of test-time views travels with the model: ``eval classifier --tta auto``
chooses it on validation and stores it in ``ddx_config.json``; ``predict`` and ``eval`` default to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermkit.cli import main
from dermkit.data.table import read_table
from dermkit.models.families.ddx import load_ddx
from dermkit.models.transforms import TTA_VIEW_COUNTS
from dermkit.predict import choose_tta


@pytest.fixture
def model_and_table(tmp_path: Path, synthetic_ham_table, untrained_ddx_model) -> tuple[Path, Path]:
    return untrained_ddx_model(tmp_path / "model"), synthetic_ham_table(tmp_path / "ham", val=0.3, test=0.3)


def config(model: Path) -> dict:
    return json.loads((model / "ddx_config.json").read_text())


def test_eval_auto_stores_the_count_chosen_on_validation_and_predict_uses_it(model_and_table, capsys) -> None:
    model, table = model_and_table
    assert "tta" not in config(model) and load_ddx(model).tta == 1
    assert main(["eval", "classifier", str(model), str(table), "--tta", "auto", "--n-boot", "10"]) == 0
    reported = json.loads(capsys.readouterr().out)
    stored = config(model)["tta"]
    expected = choose_tta(load_ddx(model), table)  # the same choice, made again on the validation split
    assert stored["views"] == expected["views"] == reported["tta"] and stored["views"] in TTA_VIEW_COUNTS
    assert stored["split"] == "val" and stored["chosen"] == "validation"
    image = read_table(table)["image_paths"].iloc[0][0]
    assert main(["predict", str(model), str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] == stored["views"]
    assert main(["predict", str(model), str(image), "--tta", "2", "--json"]) == 0  # given: used, not stored
    assert json.loads(capsys.readouterr().out)["tta"] == 2 and config(model)["tta"] == stored


def test_eval_defaults_to_the_stored_count(model_and_table, capsys) -> None:
    model, table = model_and_table
    path = model / "ddx_config.json"
    path.write_text(json.dumps({**config(model), "tta": {"views": 4, "split": "val"}}))
    assert main(["eval", "classifier", str(model), str(table), "--n-boot", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] == 4
    assert main(["eval", "classifier", str(model), str(table), "--n-boot", "10", "--tta", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] == 1 and config(model)["tta"]["views"] == 4
