"""The external test set ../shared/data/isic-archive through the CLI: imported as test, scored, out-of-space counted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dermkit.cli import main

pytestmark = pytest.mark.realdata


def test_isic_archive_scored_by_a_ham_model_reports_the_squamous_cell_carcinomas(
        isic_archive_dir: Path, tmp_path: Path, untrained_ddx_model: Callable[..., Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "isic-archive"
    assert main(["data", "import", "isic-archive", str(isic_archive_dir), "--out", str(table), "--split", "test",
                 "--no-image-check"]) == 0
    capsys.readouterr()
    model = untrained_ddx_model(tmp_path / "model")
    assert main(["eval", "classifier", str(model), str(table), "--positive", "melanoma", "--n-boot", "10",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["label_space"]["outside_label_space"] == {
        "cases": 38, "labels": {"squamous_cell_carcinoma": 38}, "counted_as": "excluded", "excluded": 38}
    assert result["n"] == 928 - 38
    assert "38 of 928 cases lie outside the model's label space (squamous_cell_carcinoma 38)" in captured.err
