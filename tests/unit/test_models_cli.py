"""``dermkit models``: list the families, export a model, report bad names without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dermkit.cli import main
from dermkit.models import load_model

torch.set_num_threads(1)


def test_models_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    assert {"tiny-clip", "dermlip-lite"} <= set(json.loads(capsys.readouterr().out))


def test_models_export_writes_a_loadable_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny-export"
    assert main(["models", "export", "tiny-clip", "--out", str(out), "--model-id", "tiny-v1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"out": str(out.resolve()), "model_id": "tiny-v1"}
    loaded = load_model(str(out))
    assert loaded.card is not None and loaded.card.model_id == "tiny-v1"
    assert main(["models", "export", "tiny-clip", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_models_export_unknown_name_is_an_error_not_a_traceback(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "export", "tiny-clp", "--out", str(tmp_path / "x")]) == 2
    assert "did you mean tiny-clip" in capsys.readouterr().err
