"""`dermkit demo` end to end on synthetic data (the path a machine without ../shared/data takes)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from huggingface_hub import ModelCard
from PIL import Image

from dermkit.cli import main
from dermkit.core.precision import resolve_precision
from dermkit.data.table import read_table
from dermkit.models.families.ddx import load_ddx
from dermkit.predict import parse_fields, predict_case


def test_demo_without_real_data_imports_splits_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--data-root", str(tmp_path / "absent"), "--out", str(out), "--model", "tiny-clip", "--json"]
    assert main(args) == 0
    printed = capsys.readouterr()
    summary = json.loads(printed.out)
    assert summary["data"] == "synthetic"
    # One line first says what the demo does and how long it takes here; every step is timed.
    plan = printed.err.lstrip().splitlines()[0]
    assert plan.startswith("dermkit demo: import") and " min here when the cores are free (CPU " in plan
    assert summary["precision"] == resolve_precision("auto") and summary["cpu_capability"] in plan
    assert {"import synthetic-ham10000", "train clip", "evaluation suite and report"} <= set(summary["timings"])
    assert summary["timings"]["total"] >= sum(v for k, v in summary["timings"].items() if k != "total") - 1
    table = summary["tables"]["synthetic-ham10000"]
    frame = read_table(table["table"])
    assert len(frame) == table["cases"] == 140
    assert set(frame["split"]) == {"train", "val", "test"}
    assert table["leaks"] == "none"
    # Lesions with two images never straddle splits.
    assert frame.groupby("lesion_id")["split"].nunique().max() == 1
    written = pd.read_csv(out / "synthetic-ham10000" / "metadata.csv")
    assert table["stats"]["counts"]["diagnosis_id"]["melanocytic_nevus"] == (written["dx"] == "nv").sum()
    for plot in table["plots"]:
        with Image.open(plot) as image:
            assert image.format == "PNG"
    assert json.loads((out / "summary.json").read_text())["data"] == "synthetic"
    # The fine-tuned model is exported, evaluated beside the untrained one, and is what --serve serves.
    assert summary["served_model"] == str(out / "clip-run" / "model")
    assert (out / "clip-run" / "model" / "open_clip_config.json").exists()
    for label in ("trained", "untrained"):
        report = summary["held_out"][label]
        assert report["zero_shot"]["n"] == (frame["split"] == "test").sum()
        assert 0.0 <= report["zero_shot"]["metrics"]["balanced_accuracy"]["estimate"] <= 1.0
        assert 0.0 <= report["retrieval"]["image_to_text"]["R@10"] <= 1.0
    # It ends with the evaluation report over both models.
    results = json.loads(Path(summary["report"]["results"]).read_text())
    assert "<img" in Path(summary["report"]["html"]).read_text()
    assert str(out / "clip-run" / "model") in json.dumps(results)
    # The image + history differential model is trained on the synthetic table (it has metadata),
    # scored on its test split with intervals and the per-group block, carded, and is what --serve serves.
    ddx = summary["ddx"]
    assert ddx["model"] == summary["served_ddx_model"] == str(out / "ddx-run" / "model")
    assert ddx["labels"] == "ham10000" and ddx["n_test"] == (frame["split"] == "test").sum()
    for name in ("balanced_accuracy", "top1_accuracy", "top3_accuracy"):
        figure = ddx["metrics"][name]
        assert figure["low"] <= figure["estimate"] <= figure["high"]
    assert {"sex", "age"} <= set(ddx["strata"])  # HAM10000 records no skin type
    assert {"train ddx", "evaluate ddx"} <= set(summary["timings"])
    assert "image + history differential model on synthetic-ham10000" in plan
    model = load_ddx(ddx["model"])
    assert model.metadata is not None  # it reads the history, not the images alone
    case = frame[frame["split"] == "test"].iloc[0]
    predicted = predict_case(model, [case["image_paths"][0]], parse_fields(age=54, sex="female", site="back"))
    ranked = [row["probability"] for row in predicted["differential"]]
    assert ranked == sorted(ranked, reverse=True) and sum(ranked) == pytest.approx(1.0, abs=1e-4)
    card = ModelCard.load(ddx["card"])
    assert card.data.to_dict()["dermkit_evaluation"]["n"] == ddx["n_test"]
    assert "### Per-group results" in card.text and "| Sex | balanced_accuracy |" in card.text
    # Without --json the demo prints the differential model's line (the same summary, not run again).
    monkeypatch.setattr("dermkit.demo.run_demo", lambda *args, **kwargs: summary)
    assert main(args[:-1]) == 0
    printed_line = next(line for line in capsys.readouterr().out.splitlines() if "image + history differential" in line)
    assert ddx["card"] in printed_line and f"{ddx['metrics']['balanced_accuracy']['estimate']:.3f}" in printed_line
