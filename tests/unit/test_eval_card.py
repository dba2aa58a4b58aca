"""One predictions table scored by ``eval classifier``, a suite and the card writer: the same figures; the card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from huggingface_hub import ModelCard as HubCard

from dermkit.cli import main
from dermkit.evaluate.card import END, START, limitations
from dermkit.models import ModelCard
from dermkit.train.ddx_trainer import DdxTrainConfig, train_ddx

TINY = {"labels": "ham10000", "other": False, "backbone": "test_efficientnet", "pretrained": False,
        "image_size": 32, "batch_size": 8, "hidden": 16}
N_BOOT = "40"
SUITE = """
name: card
options: {{bootstrap: {n_boot}, seed: 0}}
tasks:
  scored:
    type: classification
    predictions: {predictions}
    card: {model}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_ham_table) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("card")
    table = synthetic_ham_table(root, val=0.25, test=0.35, n_cases=56)
    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(root / "run"), epochs=1, **TINY))
    assert summary is not None
    return Path(summary["model"]), table


def _figures(record: dict) -> dict:
    return json.loads(json.dumps({key: record[key] for key in ("n", "resampled_by", "metrics", "strata")}))


def test_eval_classifier_a_suite_and_the_card_give_identical_figures(trained, tmp_path, capsys) -> None:
    model, table = trained
    predictions = tmp_path / "predictions.parquet"
    assert main(["eval", "classifier", str(model), str(table), "--n-boot", N_BOOT, "--out", str(predictions),
                 "--card"]) == 0
    standalone = json.loads(capsys.readouterr().out)
    assert standalone["card"] == str(model / "README.md")
    assert {"top1_accuracy", "top3_accuracy", "average_top3_sensitivity", "average_overlap", "balanced_accuracy",
            "macro_auroc", "melanoma_sensitivity", "melanoma_specificity", "ece"} <= set(standalone["metrics"])
    assert {"sex", "age"} <= set(standalone["strata"])
    card = HubCard.load(model / "README.md")
    assert _figures(card.data.to_dict()["dermkit_evaluation"]) == _figures(standalone)

    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(n_boot=N_BOOT, predictions=predictions, model=model))
    assert main(["eval", str(suite), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    [record] = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    assert _figures(record) == _figures(standalone)
    again = HubCard.load(model / "README.md")  # the suite rewrote the section from its own record
    assert _figures(again.data.to_dict()["dermkit_evaluation"]) == _figures(standalone)
    assert again.data.to_dict()["dermkit_evaluation"]["data"]["license"] == "CC BY-NC 4.0"


def test_the_card_keeps_what_training_wrote_and_holds_one_evaluation_section(trained, tmp_path, capsys) -> None:
    model, table = trained
    before = ModelCard.read(model / "README.md")
    for _ in range(2):
        assert main(["eval", "classifier", str(model), str(table), "--n-boot", "20", "--card"]) == 0
    capsys.readouterr()
    text = (model / "README.md").read_text()
    assert text.count(START) == text.count(END) == 1 and text.count("## Evaluation") == 1
    after = ModelCard.read(model / "README.md")  # training's front matter, as dermkit reads it
    assert after.results == before.results and after.training_data == before.training_data
    assert "## Training data" in text and "## Intended use" in text
    card = HubCard.load(model / "README.md")
    assert "### Per-group results" in card.text and "| Sex | balanced_accuracy | female |" in card.text
    assert "licence: CC BY-NC 4.0" in card.text and "ham10000" in card.text
    # the synthetic HAM10000 training table is all dermoscopic and records no skin type
    assert "Trained on dermoscopy only" in card.text
    assert "Fitzpatrick skin type is not recorded for the training data." in card.text


def test_limitations_name_skin_types_absent_from_training_and_small_test_groups() -> None:
    training = {"n": 30, "acquisition": {"clinical": 20, "dermoscopic": 10},
                "fitzpatrick": {"I-II": 21, "III-IV": 9, "V-VI": 0, "unknown": 0}}
    result = {"strata": {"fitzpatrick": {"balanced_accuracy": {"rows": [
        {"stratum": "I-II", "n": 40, "eligible": True}, {"stratum": "V-VI", "n": 3, "eligible": False}]}}}}
    notes = limitations(training, result)
    assert "Fitzpatrick V–VI absent from training." in notes
    assert "Fitzpatrick III–IV: only 9 of 30 training cases." in notes
    dermoscopic = {**training, "acquisition": {"dermoscopic": 30}}
    assert any(note.startswith("Trained on dermoscopy only") for note in limitations(dermoscopic, result))
    assert not any(note.startswith("Trained on") for note in limitations(dermoscopic, result, uses_images=False))
    assert not any(note.startswith("Trained on") for note in notes), "two acquisition types: no 'only' statement"
    assert any(note.startswith("Fitzpatrick V–VI: 3 test cases") for note in notes)
