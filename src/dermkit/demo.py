"""``dermkit demo``: the main job end to end on the real sample, or on synthetic data without it.

Each step is a call into the packages and writes its own artefact under ``--out``, so any step
can be re-run alone from the CLI on what the demo wrote.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermkit.core.atomic import atomic_write_text
from dermkit.data.importers import run_import
from dermkit.data.leaks import check_table
from dermkit.data.splits import split_table
from dermkit.data.stats import plot_stats, stats_for_table
from dermkit.data.synthetic import write_synthetic_ham


@dataclass(frozen=True)
class DemoSource:
    """A dataset the demo imports: importer name, where its files are, how to split it."""

    name: str
    importer: str
    path: Path
    group_by: str


def default_data_root() -> Path:
    """``$DERMKIT_DATA``, else ``../shared/data`` beside the working directory."""
    return Path(os.environ.get("DERMKIT_DATA", "../shared/data"))


def find_sources(data_root: Path | None, out: Path) -> tuple[list[DemoSource], bool]:
    """The real sample's datasets when present, else a synthetic HAM10000-layout set (written now)."""
    real = []
    if data_root is not None:
        for name, group_by in (("pad-ufes-20", "patient"), ("ham10000", "lesion")):
            if (data_root / name / "metadata.csv").exists():
                real.append(DemoSource(name, name, data_root / name, group_by))
    if real:
        return real, True
    synthetic = write_synthetic_ham(out / "synthetic-ham10000")
    return [DemoSource("synthetic-ham10000", "ham10000", synthetic, "lesion")], False


def prepare_table(source: DemoSource, out: Path, seed: int) -> dict[str, Any]:
    """Import, split without leakage, check the split, describe it (stats JSON + plots)."""
    table_dir = out / "tables" / source.name
    imported = run_import(source.importer, source.path, table_dir)
    split = split_table(table_dir, by=source.group_by, val=0.15, test=0.15, seed=seed)
    leaks = check_table(table_dir)
    stats = stats_for_table(table_dir)
    stats_dir = out / "stats" / source.name
    plots = plot_stats(stats, stats_dir)
    atomic_write_text(stats_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    return {
        "table": str(table_dir),
        "cases": imported.cases,
        "rejected": len(imported.problems),
        "split": split["counts"],
        "leaks": leaks.as_dict() if not leaks.clean else "none",
        "plots": [str(p) for p in plots],
        "stats": stats,
    }


# Projection heads on frozen, cached trunks: minutes on two CPU cores (see docs/training-clip.md).
DEMO_TRAINING = {"epochs": 30, "batch_size": 512, "lr": 5e-4, "warmup": 50, "lock_image": True, "lock_text": True,
                 "precision": "auto", "workers": 1}


def train_vision_language(model: str, tables: list[str], out: Path, seed: int) -> dict[str, Any]:
    """Fine-tune ``model`` contrastively on the tables' training splits; return the run summary."""
    from dermkit.train.clip import ClipTrainConfig, train_clip

    from dermkit.data.table import read_table

    train_cases = sum(int((read_table(table)["split"] == "train").sum()) for table in tables)
    # The small synthetic set cannot fill the recipe's batch: use the largest power of two that fits.
    batch_size = min(DEMO_TRAINING["batch_size"], 2 ** (train_cases.bit_length() - 1))
    recipe = {**DEMO_TRAINING, "batch_size": batch_size}
    config = ClipTrainConfig(model=model, data=tables, out=str(out / "clip-run"), seed=seed,
                             cache_dir=str(out / "feature-cache"), **recipe)
    summary = train_clip(config)
    assert summary is not None  # a single-process run is always the main process
    return summary


def held_out_report(model: str, table_dir: str, out: Path) -> dict[str, Any]:
    """Text-prompt (zero-shot style) classification and image↔text retrieval on the test split."""
    from dermkit.evaluate.retrieval import retrieval_report
    from dermkit.evaluate.zeroshot import zero_shot_report

    cache = out / "feature-cache"
    return {
        "zero_shot": zero_shot_report(model, table_dir, split="test", cache_dir=cache),
        "retrieval": retrieval_report(model, table_dir, split="test", cache_dir=cache),
    }


def evaluation_suite(tables: dict[str, dict[str, Any]], models: list[str], real: bool) -> dict[str, Any]:
    """The demo's evaluation suite (see docs/evaluation-suites.md); table paths relative to ``out``."""
    datasets: dict[str, Any] = {}
    for name, table in tables.items():
        datasets[name] = {"table": f"tables/{name}"}
        if real and name == "ham10000":
            datasets[name]["max_cases"] = 2000  # a class-stratified sample keeps the demo short
    if real:
        models = [*models, "timm:efficientnet_lite0"]  # a frozen ImageNet backbone as the probe baseline
    return {
        "name": "demo",
        "options": {"bootstrap": 200, "strata": ["fitzpatrick", "sex", "age"], "hierarchy_levels": [2]},
        "datasets": datasets,
        "models": models,
        "tasks": {
            "zero-shot": {"type": "zero-shot"},
            "linear-probe": {"type": "linear-probe", "regimes": ["full", "shot:4", "shot:16"], "seeds": [0, 1, 2]},
            "retrieval": {"type": "retrieval", "captions_per_case": 3},
            "melanoma": {"type": "binary", "from": "linear-probe", "positive": ["melanoma"]},
        },
    }


def evaluate_and_report(summary: dict[str, Any], models: list[str], out: Path, real: bool) -> dict[str, str]:
    """Run the demo suite over every table and model, then write the HTML and Markdown report."""
    import yaml

    from dermkit.evaluate.report import write_report
    from dermkit.evaluate.runner import run_suite

    suite_file = out / "suite.yaml"
    atomic_write_text(suite_file, yaml.safe_dump(evaluation_suite(summary["tables"], models, real), sort_keys=False))
    run_suite(suite_file, out / "eval")
    html, markdown = write_report(out / "eval", out / "report.html")
    return {"html": str(html), "markdown": str(markdown), "results": str(out / "eval" / "results.json")}


def run_demo(
    data_root: Path | None, out: Path, seed: int = 0, model: str = "dermlip-lite", train: bool = True
) -> dict[str, Any]:
    """Run every demo step and write ``summary.json`` under ``out``.

    With ``train``, ``model`` is fine-tuned on the training splits and both it and the untrained
    model are evaluated on the held-out split of the first table (PAD-UFES-20 on the real sample).
    """
    out.mkdir(parents=True, exist_ok=True)
    sources, real = find_sources(data_root, out)
    summary: dict[str, Any] = {"data": "real sample" if real else "synthetic", "tables": {}}
    for source in sources:
        summary["tables"][source.name] = prepare_table(source, out, seed)
    tables = [table["table"] for table in summary["tables"].values()]
    summary["served_model"] = model
    if train:
        run = train_vision_language(model, tables, out, seed)
        trained = str(Path(run["out"]) / "model")
        summary["training"] = run
        summary["served_model"] = trained
        summary["held_out"] = {
            "table": tables[0],
            "trained": held_out_report(trained, tables[0], out),
            "untrained": held_out_report(model, tables[0], out),
        }
        summary["report"] = evaluate_and_report(summary, [trained, model], out, real)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
