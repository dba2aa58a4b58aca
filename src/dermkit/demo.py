"""``dermkit demo``: the main job end to end on the real sample, or on synthetic data without it.

Each step is a call into the packages and writes its own artefact under ``--out``, so any step
can be re-run alone from the CLI on what the demo wrote.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermkit.core.atomic import atomic_write_text
from dermkit.data.importers import run_import
from dermkit.data.leaks import check_table
from dermkit.data.splits import split_counts, split_table, stratified_sample
from dermkit.data.stats import plot_stats, stats_for_table
from dermkit.data.synthetic import write_synthetic_ham
from dermkit.data.table import read_manifest, read_table, write_table

# Every image the demo trains or evaluates on costs one pass of the image trunk (twice: once for
# the training cache, once for evaluation), the one expensive step on a CPU. HAM10000 is imported,
# split, leak-checked and described whole, then trained and evaluated on a class-stratified sample
# of this many cases (``--ham-cases``), which keeps a cold demo within 15 minutes on two cores
# without native bf16 (bench/demo_cold.py).
DEMO_HAM_CASES = 800


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


class StepTimer:
    """Wall seconds of each demo step, in the order they ran (``summary.json`` ``timings``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 1)


def prepare_table(source: DemoSource, out: Path, seed: int, timer: StepTimer | None = None) -> dict[str, Any]:
    """Import, split without leakage, check the split, describe it (stats JSON + plots)."""
    timer = timer or StepTimer()
    table_dir = out / "tables" / source.name
    with timer.step(f"import {source.name}"):
        imported = run_import(source.importer, source.path, table_dir)
    with timer.step(f"split {source.name}"):
        split = split_table(table_dir, by=source.group_by, val=0.15, test=0.15, seed=seed)
    with timer.step(f"check leaks {source.name}"):
        leaks = check_table(table_dir)
    with timer.step(f"stats and plots {source.name}"):
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


DEMO_BOOTSTRAP = 200  # resamples of every interval the demo prints (suite and held-out reports alike)


def sample_table(table_dir: str, cases: int, seed: int) -> dict[str, Any]:
    """A class-stratified sample of a split table, written beside it as ``NAME-sample``."""
    frame = read_table(table_dir)
    sample = stratified_sample(frame, cases, seed)
    manifest = {k: v for k, v in read_manifest(table_dir).items() if k not in ("cases", "written_at")}
    out = Path(f"{table_dir}-sample")
    write_table(sample, out, manifest={**manifest, "sample_of": str(table_dir), "sample_seed": seed})
    return {"table": str(out), "cases": len(sample), "of": len(frame), "split": split_counts(sample),
            "rule": "class-stratified (each diagnosis keeps its share), splits kept"}


# Projection heads on frozen, cached trunks: minutes on two CPU cores (see docs/training-clip.md).
# Batch 128 gives the ~850 training cases of the sampled tables 6 steps an epoch (180 in all).
DEMO_TRAINING = {"epochs": 30, "batch_size": 128, "lr": 5e-4, "warmup": 50, "lock_image": True, "lock_text": True,
                 "precision": "auto", "workers": 1}


def train_vision_language(model: str, tables: list[str], out: Path, seed: int) -> dict[str, Any]:
    """Fine-tune ``model`` contrastively on the tables' training splits; return the run summary."""
    from dermkit.train.clip import ClipTrainConfig, train_clip

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
        "zero_shot": zero_shot_report(model, table_dir, split="test", cache_dir=cache, n_boot=DEMO_BOOTSTRAP),
        "retrieval": retrieval_report(model, table_dir, split="test", cache_dir=cache, n_boot=DEMO_BOOTSTRAP),
    }


# Image + history heads on a frozen, cached trunk: recipe C of docs/ddx.md (PAD-UFES-20), under a
# minute on two cores, most of it the one trunk pass that fills the cache.
DEMO_DDX: dict[str, Any] = {"inputs": "images+metadata", "other": False, "class_weights": "inverse", "hidden": 64, "dropout": 0.5,
            "lr": 3e-4, "wd": 0.01, "epochs": 200, "patience": 25, "precision": "auto"}
DDX_LABELS = {"pad-ufes-20": "pad-ufes-20", "synthetic-ham10000": "ham10000"}  # table name -> label set


def train_and_evaluate_ddx(name: str, table_dir: str, out: Path, seed: int,
                           timer: StepTimer | None = None) -> dict[str, Any]:
    """Train the image + history DDx model on the training split, score the test split, write its card.

    Scoring is ``eval classifier``'s: ``predict_table`` then the metric collection (intervals and the
    per-group block), and the card writer ``eval classifier --card`` calls.
    """
    from dermkit.evaluate.card import table_data, write_evaluation_card
    from dermkit.evaluate.metrics.collection import score_predictions
    from dermkit.models.families.ddx import load_ddx
    from dermkit.predict import predict_table
    from dermkit.train.ddx_trainer import DdxTrainConfig, train_ddx

    timer = timer or StepTimer()
    cache = out / "ddx-feature-cache"
    with timer.step("train ddx"):
        config = DdxTrainConfig(data=[table_dir], out=str(out / "ddx-run"), labels=DDX_LABELS[name], seed=seed,
                                cache_dir=str(cache), **DEMO_DDX)
        run = train_ddx(config)
        assert run is not None  # a single-process run is always the main process
    with timer.step("evaluate ddx"):
        model_dir = run["model"]
        predictions = predict_table(load_ddx(model_dir), table_dir, ["test"], cache_dir=cache)
        result = score_predictions(predictions, n_boot=DEMO_BOOTSTRAP)
        card = write_evaluation_card(model_dir, result, data=table_data(table_dir, ["test"]))
    headline = {metric: result["metrics"][metric] for metric in ("balanced_accuracy", "top1_accuracy", "top3_accuracy")}
    return {"model": model_dir, "table": table_dir, "labels": DDX_LABELS[name], "n_test": result["n"],
            "metrics": headline, "strata": sorted(result.get("strata") or {}), "card": str(card),
            "best_epoch": run["best_epoch"], "epochs_run": run["epochs_run"]}


def evaluation_suite(tables: dict[str, str], models: list[str], real: bool, cache_dir: Path) -> dict[str, Any]:
    """The demo's evaluation suite (see docs/evaluation-suites.md) over ``tables`` (name → table directory).

    It shares the training's feature cache, so the held-out reports' features are not computed again.
    """
    datasets = {name: {"table": table} for name, table in tables.items()}
    if real:
        models = [*models, "timm:efficientnet_lite0"]  # a frozen ImageNet backbone as the probe baseline
    return {
        "name": "demo",
        "options": {"bootstrap": DEMO_BOOTSTRAP, "strata": ["fitzpatrick", "sex", "age"], "hierarchy_levels": [2],
                    "cache_dir": str(cache_dir)},
        "datasets": datasets,
        "models": models,
        "tasks": {
            "zero-shot": {"type": "zero-shot"},
            "linear-probe": {"type": "linear-probe", "regimes": ["full", "shot:4", "shot:16"], "seeds": [0, 1, 2]},
            "retrieval": {"type": "retrieval", "captions_per_case": 3},
            "melanoma": {"type": "binary", "from": "linear-probe", "positive": ["melanoma"]},
        },
    }


def evaluate_and_report(tables: dict[str, str], models: list[str], out: Path, real: bool) -> dict[str, str]:
    """Run the demo suite over every table and model, then write the HTML and Markdown report."""
    import yaml

    from dermkit.evaluate.report import write_report
    from dermkit.evaluate.runner import run_suite

    suite_file = out / "suite.yaml"
    suite = evaluation_suite(tables, models, real, out / "feature-cache")
    atomic_write_text(suite_file, yaml.safe_dump(suite, sort_keys=False))
    run_suite(suite_file, out / "eval")
    html, markdown = write_report(out / "eval", out / "report.html")
    return {"html": str(html), "markdown": str(markdown), "results": str(out / "eval" / "results.json")}


def demo_plan(sources: list[DemoSource], ham_cases: int, train: bool, model: str, real: bool) -> str:
    """The one line the demo starts with: what it will do and about how long it takes here."""
    from dermkit.core.precision import cpu_capability, resolve_precision

    images = {source.name: _count_rows(source.path / "metadata.csv") for source in sources}
    used = {name: min(n, ham_cases) if name == "ham10000" else n for name, n in images.items()}
    precision = resolve_precision("auto")
    ddx = next((name for name in images if name in DDX_LABELS), None)
    minutes = estimate_minutes(sum(images.values()), sum(used.values()) if train else 0, precision,
                               ddx=images[ddx] if train and ddx else 0)
    sizes = ", ".join(f"{name} {n:,} images" for name, n in images.items())
    sample = f" (HAM10000: a class-stratified sample of {used['ham10000']:,})" if used != images else ""
    work = (f"fine-tune {model} on {sum(used.values()):,} cases{sample}, held-out reports, "
            f"an evaluation suite over {3 if real else 2} models" if train else "no training")
    if train and ddx:
        work += f", an image + history differential model on {ddx} ({images[ddx]:,} cases) with its card"
    return (f"dermkit demo: import, split, leak-check and describe {sizes}; {work}. "
            f"About {minutes:.0f} min here when the cores are free (CPU {cpu_capability()}, {precision}, "
            f"{os.cpu_count()} cores; longer while other work shares them).")


# Seconds per image on two cores, measured by bench/demo_cold.py and bench/extract_throughput.py:
# importing (full decode, hashes, stats) and one image-trunk pass in each precision.
IMPORT_S_PER_IMAGE = 0.006
TRUNK_S_PER_IMAGE = {"fp32": 0.045, "bf16": 0.04}
FIXED_S = 210  # model loading, caption encoding, training epochs, probes, bootstrap, report
DDX_FIXED_S = 15  # the differential model's trunk loading, head epochs, bootstrap and card


def estimate_minutes(imported: int, trained: int, precision: str, ddx: int = 0) -> float:
    """Rough wall minutes: imports scale with every image, trunk passes (two) with the cases used,
    and the differential model's one trunk pass with its table's ``ddx`` images."""
    cores = max(1, min(os.cpu_count() or 1, 8))
    trunk = (2 * trained + ddx) * TRUNK_S_PER_IMAGE[precision]
    seconds = imported * IMPORT_S_PER_IMAGE + (trunk + FIXED_S + (DDX_FIXED_S if ddx else 0)) * 2 / cores
    return seconds / 60


def _count_rows(csv: Path) -> int:
    with open(csv, "rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def run_demo(
    data_root: Path | None, out: Path, seed: int = 0, model: str = "dermlip-lite", train: bool = True,
    ham_cases: int = DEMO_HAM_CASES,
) -> dict[str, Any]:
    """Run every demo step and write ``summary.json`` under ``out``.

    With ``train``, ``model`` is fine-tuned on the training splits and both it and the untrained
    model are evaluated on the held-out split of the first table (PAD-UFES-20 on the real sample).
    HAM10000 is trained and evaluated on a class-stratified sample of ``ham_cases`` cases. The image +
    history differential model is trained on PAD-UFES-20 (the synthetic table without the real sample),
    scored on its test split and carded; ``--serve`` serves it beside the fine-tuned model.
    """
    from dermkit.core.precision import precision_record, resolve_precision

    out.mkdir(parents=True, exist_ok=True)
    timer, started = StepTimer(), time.perf_counter()
    sources, real = find_sources(data_root, out)
    print(demo_plan(sources, ham_cases, train, model, real), file=sys.stderr, flush=True)  # stdout may be --json
    summary: dict[str, Any] = {"data": "real sample" if real else "synthetic", "tables": {},
                               **precision_record(resolve_precision("auto"))}
    for source in sources:
        summary["tables"][source.name] = prepare_table(source, out, seed, timer)
    used = {name: table["table"] for name, table in summary["tables"].items()}
    if "ham10000" in used and summary["tables"]["ham10000"]["cases"] > ham_cases:
        with timer.step("sample ham10000"):
            sample = sample_table(used["ham10000"], ham_cases, seed)
        summary["tables"]["ham10000"]["sample"] = sample
        used["ham10000"] = sample["table"]
    tables = list(used.values())
    summary["served_model"] = model
    if train:
        with timer.step("train clip"):
            run = train_vision_language(model, tables, out, seed)
        trained = str(Path(run["out"]) / "model")
        summary["training"] = run
        summary["served_model"] = trained
        with timer.step("held-out reports"):
            summary["held_out"] = {
                "table": tables[0],
                "trained": held_out_report(trained, tables[0], out),
                "untrained": held_out_report(model, tables[0], out),
            }
        with timer.step("evaluation suite and report"):
            summary["report"] = evaluate_and_report(used, [trained, model], out, real)
        ddx_table = next(name for name in used if name in DDX_LABELS)
        summary["ddx"] = train_and_evaluate_ddx(ddx_table, used[ddx_table], out, seed, timer)
        summary["served_ddx_model"] = summary["ddx"]["model"]
    summary["timings"] = {**timer.seconds, "total": round(time.perf_counter() - started, 1)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
