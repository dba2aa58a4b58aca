"""Run a validated suite: build missing case tables, run every task, write predictions and results.

Layout of a run directory (``dermkit eval SUITE.yaml --out RUN``)::

    RUN/suite.yaml                                   the suite as run
    RUN/tables/<dataset>/                            case tables the suite built (import + split)
    RUN/predictions/<task>/<model>/<dataset>.parquet predictions tables (val and test rows)
    RUN/predictions/<task>/<model>/<dataset>.ranks.parquet  retrieval: each test case's first-hit rank
    RUN/results.json                                 every metric: estimate, patient-bootstrap CI,
                                                     strata with the best-worst gap, ontology levels

What each task type does lives in its module of :mod:`dermkit.evaluate.tasks`; the runner loads
models and features, dispatches every job to its registered type, and records the results.
Each model is loaded once and each (model, dataset) embedded once (the feature cache), then every
task reuses the embeddings. ``results.json`` is rewritten after every task, so a killed run keeps
what it finished. Metrics are computed on the test split; validation rows are kept in the tables
because the binary task chooses its threshold on them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dermkit.core.atomic import atomic_write_text
from dermkit.core.errors import InputError
from dermkit.data.predictions import Predictions, write_predictions
from dermkit.data.schema import ALL_SPLITS
from dermkit.data.table import read_table
from dermkit.evaluate.hierarchy import at_level
from dermkit.evaluate.metrics.collection import metric_fns, score_predictions
from dermkit.evaluate.suite import (
    Dataset,
    Suite,
    Task,
    has_table,
    is_path_like,
    load_suite,
    model_path,
)
from dermkit.evaluate.tasks import TASKS, EvalTask
from dermkit.evaluate.tasks.base import Job
from dermkit.models.embeddings import ImageFeatures

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

RESULTS_FILE = "results.json"


# -- metrics: all from the one collection (dermkit.evaluate.metrics.collection) ---------------------

def scoring_options(suite: Suite) -> dict[str, Any]:
    """The suite's bootstrap and strata settings as :func:`score_predictions` keywords."""
    options = suite.options
    return {"n_boot": options.bootstrap, "level": options.level, "seed": options.seed, "strata": options.strata,
            "strata_metrics": options.strata_metrics, "min_stratum": options.min_stratum}


def evaluate_predictions(predictions: Predictions, suite: Suite, levels: Sequence[int] = (),
                         metrics: Sequence[str] | None = None, threshold: float | None = None) -> dict[str, Any]:
    """The collection's figures (intervals, per-group block) and, for classification, the ontology levels."""
    result = score_predictions(predictions, metrics=metrics, threshold=threshold, **scoring_options(suite))
    hierarchy: dict[str, Any] = {}
    for level in levels:
        merged = at_level(predictions, level)
        entry: dict[str, Any] = {"classes": list(merged.classes)}
        if len(merged.classes) < 2:
            entry["skipped"] = "all classes share one ancestor at this level"
        else:
            applicable = metric_fns(merged.classes, differential=result["reference"] == "differential")
            names = [name for name in result["metrics"] if name in applicable]
            entry["metrics"] = score_predictions(merged, metrics=names, **{**scoring_options(suite), "strata": ()}
                                                 )["metrics"]
        hierarchy[str(level)] = entry
    return {**result, "hierarchy": hierarchy}


# -- datasets ---------------------------------------------------------------------------------------

def prepare_dataset(dataset: Dataset, out: Path, seed: int = 0,
                    all_split: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The dataset's cases (built by import + split when its table is absent) and a description.

    ``all_split`` (``eval SUITE --split all``), or the dataset's ``split: {all: test}``, puts every
    case in that split for this run (an external test set); an existing table is left as it is.
    """
    from dermkit.data.importers import run_import
    from dermkit.data.splits import split_table, stratified_sample

    table = dataset.table or out / "tables" / dataset.name
    all_split = all_split or (dataset.split or {}).get("all")
    built = False
    if not has_table(table):
        if dataset.source is None:
            raise InputError(f"dataset {dataset.name!r}: no case table and no 'import' to build one", file=table)
        source = dataset.source
        run_import(source["source"], source["path"], table, on_error=source.get("on_error", "raise"),
                   options={k: str(v) for k, v in (source.get("options") or {}).items()}, split=all_split)
        if all_split is None:
            split_table(table, **{"by": "patient", **(dataset.split or {})})
        built = True
    frame = read_table(table)
    if all_split is not None:
        frame["split"] = all_split
    if frame["split"].isna().all():
        raise InputError(f"dataset {dataset.name!r} has no splits; add 'split:' (an external test set: "
                         "'split: {all: test}'), run 'dermkit data split', or run the suite with --split all",
                         file=table)
    if dataset.max_cases is not None:
        frame = stratified_sample(frame, dataset.max_cases, seed)
    counts = frame["split"].value_counts().to_dict()
    return frame, {"table": str(table), "built": built, "cases": len(frame), "splits": counts}


# -- models and features ----------------------------------------------------------------------------

def load_for_suite(name: str, suite: Suite) -> LoadedModel | None:
    """The model behind a suite's model name (None for precomputed embeddings); a path-like name is
    read relative to the suite file."""
    from dermkit.models import load_model
    from dermkit.models.factory import source_of
    from dermkit.models.names import model_name

    parsed, source = source_of(name)
    if source.kind == "embeddings":
        return None
    if is_path_like(name):
        parsed = model_name("local-dir", str(model_path(name, suite.path.parent)))
    return load_model(parsed, device=suite.options.device)


def features_for(name: str, loaded: LoadedModel | None, frame: pd.DataFrame, suite: Suite, progress: bool) -> ImageFeatures:
    """Cached image embeddings of every case of ``frame`` (or the precomputed ones)."""
    from dermkit.models.encoding import extract_image_features
    from dermkit.models.factory import load_embeddings
    from dermkit.models.names import model_name

    if loaded is None:
        return load_embeddings(model_name("embeddings", str(model_path(name, suite.path.parent))))
    options = suite.options
    return extract_image_features(loaded, frame, images=options.images, cache_dir=options.cache_dir,  # type: ignore[arg-type]
                                  batch_size=options.batch_size, num_workers=options.workers,
                                  precision=options.precision, progress=progress)  # type: ignore[arg-type]


# -- what the task types share (dermkit.evaluate.tasks) ---------------------------------------------

def concat(parts: Sequence[Predictions]) -> Predictions:
    """One predictions table of several (e.g. a task's val and test splits)."""
    first = parts[0]
    return Predictions(pd.concat([p.frame for p in parts], ignore_index=True), first.model_id, first.classes)


def splits_present(frame: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    return [split for split in wanted if (frame["split"] == split).any()]


def task_split(task: Task) -> str:
    return task.settings.get("split", "test")


def scored_record(job: Job, predictions: Predictions, details: dict[str, Any]) -> dict[str, Any]:
    """Keep a classifying task's predictions for later tasks, write them, score their test rows."""
    task = job.task
    job.scored[(task.name, job.model, job.dataset.name)] = predictions
    path = predictions_path(task.name, job.model, job.dataset.name)
    write_predictions(predictions, job.out / path)
    test = predictions.where(predictions.frame["split"] == task_split(task))
    return {"predictions": str(path), "split": task_split(task),
            **evaluate_predictions(test, job.suite, job.suite.options.hierarchy_levels, task.settings.get("metrics")),
            "details": details}


# -- the run ----------------------------------------------------------------------------------------

def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def predictions_path(task: str, model: str, dataset: str, suffix: str = ".parquet") -> Path:
    """Where a run keeps one predictions table, relative to the run directory."""
    return Path("predictions") / _slug(task) / _slug(model) / f"{_slug(dataset)}{suffix}"


class _Recorder:
    """Collects results and rewrites ``results.json`` after every task."""

    def __init__(self, suite: Suite, out: Path) -> None:
        self.out = out
        self.started = time.time()
        self.document: dict[str, Any] = {
            "suite": suite.name, "suite_file": str(suite.path), "options": _options_dict(suite),
            "machine": {"cpus": os.cpu_count(), "load_average_start": list(os.getloadavg()),
                        "python": platform.python_version()},
            "datasets": {}, "results": [], "status": "running",
        }

    def add(self, record: dict[str, Any]) -> None:
        self.document["results"].append(record)
        self.flush()

    def flush(self, status: str = "running") -> None:
        self.document["status"] = status
        self.document["wall_s"] = round(time.time() - self.started, 1)
        atomic_write_text(self.out / RESULTS_FILE, json.dumps(_clean(self.document), indent=2) + "\n")


def _options_dict(suite: Suite) -> dict[str, Any]:
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(suite.options).items()}


def _jobs(suite: Suite) -> list[tuple[str, str, Task]]:
    """(model, dataset, task) for every model-running or score-derived task, grouped by model then dataset."""
    return [(model, dataset, task) for model in suite.models for dataset in suite.datasets
            for task in suite.tasks.values() if model in task.models and dataset in task.datasets]


def run_suite(suite: Suite | str | Path, out: str | Path, progress: bool = True,
              split: str | None = None) -> dict[str, Any]:
    """Run every task of ``suite`` into the run directory ``out``; return the results document.

    ``split="all"`` scores every case of every dataset, whatever its split: each is taken as a test set.
    """
    if split not in (None, ALL_SPLITS):
        raise InputError(f"a suite's --split is {ALL_SPLITS!r} (each task names its own split otherwise), "
                         f"got {split!r}", field="--split")
    from tqdm.auto import tqdm

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "suite.yaml", suite.path.read_text(encoding="utf-8"))
    recorder = _Recorder(suite, out)
    frames: dict[str, pd.DataFrame] = {}
    for dataset in suite.datasets.values():
        frames[dataset.name], recorder.document["datasets"][dataset.name] = prepare_dataset(
            dataset, out, suite.options.seed, all_split="test" if split == ALL_SPLITS else None)
    jobs = _jobs(suite)
    once = [t for t in suite.tasks.values() if type(TASKS[t.type]).run_once is not EvalTask.run_once]
    bar = tqdm(total=len(jobs) + len(once), desc="suite", unit="task", disable=not progress)
    scored: dict[tuple[str, str, str], Predictions] = {}
    loaded_name, loaded, features_key, features = None, None, None, None
    for model, dataset_name, task in jobs:
        bar.set_postfix_str(f"{task.name} / {model} / {dataset_name}")
        dataset, frame = suite.datasets[dataset_name], frames[dataset_name]
        if TASKS[task.type].loads_model:
            if loaded_name != model:
                loaded_name, loaded, features_key = model, load_for_suite(model, suite), None
            if features_key != (model, dataset_name):
                features_key, features = (model, dataset_name), features_for(model, loaded, frame, suite, progress)
        record = TASKS[task.type].run(Job(task, dataset, model, frame, loaded, features, suite, out, scored))
        recorder.add({"task": task.name, "type": task.type, "model": model, "dataset": dataset_name, **record})
        bar.update()
    for task in once:
        for record in TASKS[task.type].run_once(task, suite, out) or []:
            recorder.add(record)
        bar.update()
    bar.close()
    recorder.document["machine"]["load_average_end"] = list(os.getloadavg())
    recorder.flush("finished")
    return recorder.document
