"""Run a validated suite: build missing case tables, run every task, write predictions and results.

Layout of a run directory (``dermkit eval SUITE.yaml --out RUN``)::

    RUN/suite.yaml                                   the suite as run
    RUN/tables/<dataset>/                            case tables the suite built (import + split)
    RUN/predictions/<task>/<model>/<dataset>.parquet predictions tables (val and test rows)
    RUN/predictions/<task>/<model>/<dataset>.ranks.parquet  retrieval: each test case's first-hit rank
    RUN/results.json                                 every metric: estimate, patient-bootstrap CI,
                                                     strata with the best-worst gap, ontology levels

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

from dermkit.core.atomic import atomic_path, atomic_write_text
from dermkit.core.errors import InputError
from dermkit.data.schema import ALL_SPLITS
from dermkit.data.table import read_table
from dermkit.evaluate.features import (
    ImageFeatures,
    encode_texts,
    split_embeddings,
)
from dermkit.evaluate.hierarchy import at_level
from dermkit.evaluate.metrics.collection import (
    metric_fns,
    score_predictions,
    score_rows,
)
from dermkit.evaluate.predictions import (
    GROUPING_FIELDS,
    UNLABELLED,
    Predictions,
    read_predictions,
    write_predictions,
)
from dermkit.evaluate.suite import (
    Dataset,
    Suite,
    Task,
    has_table,
    is_path_like,
    load_suite,
    model_path,
    resolve_path,
)
from dermkit.metrics import UndefinedMetricError, choose_threshold

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

RESULTS_FILE = "results.json"
NEGATIVE_CLASS = "rest"


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
    """The model behind a suite's model name (None for precomputed embeddings)."""
    from dermkit.evaluate import backbones
    from dermkit.models import load_model
    from dermkit.models.registry import LOCAL_DIR_PREFIX

    if name.startswith(backbones.EMBEDDINGS_PREFIX):
        return None
    if name.startswith(backbones.TIMM_PREFIX):
        return backbones.load_timm_backbone(name, suite.options.device)
    if is_path_like(name):
        return load_model(LOCAL_DIR_PREFIX + str(model_path(name, suite.path.parent)), device=suite.options.device)
    return load_model(name, device=suite.options.device)


def features_for(name: str, loaded: LoadedModel | None, frame: pd.DataFrame, suite: Suite, progress: bool) -> ImageFeatures:
    """Cached image embeddings of every case of ``frame`` (or the precomputed ones)."""
    from dermkit.evaluate.backbones import read_embeddings
    from dermkit.evaluate.features import extract_image_features

    if loaded is None:
        return read_embeddings(model_path(name, suite.path.parent))
    options = suite.options
    return extract_image_features(loaded, frame, images=options.images, cache_dir=options.cache_dir,  # type: ignore[arg-type]
                                  batch_size=options.batch_size, num_workers=options.workers,
                                  precision=options.precision, progress=progress)  # type: ignore[arg-type]


# -- tasks ------------------------------------------------------------------------------------------

def _concat(parts: Sequence[Predictions]) -> Predictions:
    first = parts[0]
    return Predictions(pd.concat([p.frame for p in parts], ignore_index=True), first.model_id, first.classes)


def _splits_present(frame: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    return [split for split in wanted if (frame["split"] == split).any()]


def run_zero_shot(task: Task, dataset: Dataset, model: str, loaded: LoadedModel, frame: pd.DataFrame,
                  features: ImageFeatures) -> Predictions:
    """Zero-shot predictions of the validation and test splits."""
    from dermkit.evaluate.zeroshot import zero_shot_predictions

    splits = _splits_present(frame, [task.settings.get("val_split", "val"), task.settings.get("split", "test")])
    return _concat([zero_shot_predictions(loaded, frame, classes=dataset.classes, split=split, features=features,
                                          progress=False) for split in splits])


def run_probe(task: Task, dataset: Dataset, model: str, frame: pd.DataFrame,
              features: ImageFeatures) -> tuple[Predictions, dict[str, Any]]:
    """Probe summary over regimes and seeds, and the full-data probe's val and test predictions."""
    from dermkit.evaluate.linear_probe import (
        DEFAULT_CS,
        DEFAULT_REGIMES,
        DEFAULT_SEEDS,
        probe_predictions,
        run_linear_probe,
        split_data,
    )
    from dermkit.evaluate.zeroshot import resolve_classes

    class_ids = resolve_classes(dataset.classes, frame)
    data, cases = split_data(frame, features, class_ids)
    cs = [float(c) for c in task.settings.get("cs", DEFAULT_CS)]
    regimes = task.settings.get("regimes", DEFAULT_REGIMES)
    summary = run_linear_probe(data, regimes, task.settings.get("seeds", DEFAULT_SEEDS), cs)
    predictions, chosen = probe_predictions(data, cases, class_ids, model, summary, cs)
    details = {"n_train": int(data.train_y.size), "n_val": int(data.val_y.size), "n_test": int(data.test_y.size),
               "C": chosen, "regimes": summary}
    return predictions, details


def run_retrieval(task: Task, loaded: LoadedModel, frame: pd.DataFrame, features: ImageFeatures,
                  suite: Suite) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Recall at k both ways; image-to-text recall also with patient-bootstrap CIs. Returns ranks too."""
    from dermkit.evaluate.retrieval import (
        DEFAULT_KS,
        case_captions,
        first_hit_ranks,
        recall_metric_fns,
        retrieval_metrics,
    )

    split = task.settings.get("split", "test")
    ks = tuple(task.settings.get("ks", DEFAULT_KS))
    cases, embeddings = split_embeddings(loaded, frame, split, features=features, progress=False)
    texts, relevant = case_captions(cases, task.settings.get("captions_per_case", 3), task.settings.get("seed", 0))
    similarity = embeddings @ encode_texts(loaded, texts).T
    ranks = first_hit_ranks(similarity, relevant)
    scored = score_rows(recall_metric_fns(ks), ranks, np.zeros(len(ranks)), cases, **scoring_options(suite))
    table = cases.reindex(columns=["case_id", *GROUPING_FIELDS, "split"]).assign(image_to_text_rank=ranks)
    details = {"n_images": len(cases), "n_texts": len(texts), **retrieval_metrics(similarity, relevant, ks)}
    return table, {**scored, "details": details}


def binary_view(source: Predictions, positive: Sequence[str]) -> tuple[Predictions, str]:
    """Two-class predictions: score = summed probability of classes at or below a ``positive`` node."""
    from dermkit.ontology import default_ontology

    conditions = default_ontology().conditions
    wanted = {conditions.get(term).id for term in positive}
    is_positive = np.array([any(node.id in wanted for node in conditions.path(c)) for c in source.classes])
    if not is_positive.any() or is_positive.all():
        raise InputError(f"positive {sorted(wanted)} must cover some but not all of the classes {list(source.classes)}",
                         field="positive")
    score = np.clip(source.probs()[:, is_positive].sum(axis=1), 0.0, 1.0)
    labels = source.labels()
    binary = np.where(labels == UNLABELLED, UNLABELLED, is_positive[np.maximum(labels, 0)].astype(np.int64))
    name = "+".join(sorted(wanted))
    frame = source.frame.assign(label=binary.astype(np.int32), probs=list(np.c_[1 - score, score]), target=None)
    return Predictions(frame, source.model_id, (NEGATIVE_CLASS, name)), name


def run_binary(task: Task, source: Predictions, suite: Suite) -> tuple[Predictions, dict[str, Any]]:
    """Positive-vs-rest with an operating threshold chosen on validation rows, scored on test rows."""
    predictions, name = binary_view(source, task.settings["positive"])
    val = predictions.where(predictions.frame["split"] == "val").labelled()
    test = predictions.where(predictions.frame["split"] == task_split(task))
    rule = task.settings.get("threshold", "youden")
    try:
        threshold = choose_threshold(val.probs()[:, 1], val.labels() == 1, rule,
                                     task.settings.get("target_sensitivity", 0.9))
    except UndefinedMetricError as exc:
        raise InputError(f"task {task.name!r}: cannot choose a threshold on the validation split: {exc}") from exc
    result = evaluate_predictions(test, suite, metrics=task.settings.get("metrics"), threshold=threshold)
    result["threshold"] = {"value": threshold, "rule": rule, "chosen_on": "val", "n_val": len(val), "positive": name}
    return predictions, result


def task_split(task: Task) -> str:
    return task.settings.get("split", "test")


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
    classification = [t for t in suite.tasks.values() if t.type == "classification"]
    bar = tqdm(total=len(jobs) + len(classification), desc="suite", unit="task", disable=not progress)
    scored: dict[tuple[str, str, str], Predictions] = {}
    loaded_name, loaded, features_key, features = None, None, None, None
    for model, dataset_name, task in jobs:
        bar.set_postfix_str(f"{task.name} / {model} / {dataset_name}")
        dataset, frame = suite.datasets[dataset_name], frames[dataset_name]
        if task.type != "binary":
            if loaded_name != model:
                loaded_name, loaded, features_key = model, load_for_suite(model, suite), None
            if features_key != (model, dataset_name):
                features_key, features = (model, dataset_name), features_for(model, loaded, frame, suite, progress)
        record = _run_job(task, dataset, model, frame, loaded, features, suite, out, scored)
        recorder.add({"task": task.name, "type": task.type, "model": model, "dataset": dataset_name, **record})
        bar.update()
    for task in classification:
        for record in _run_classification(task, suite, out):
            recorder.add(record)
        bar.update()
    bar.close()
    recorder.document["machine"]["load_average_end"] = list(os.getloadavg())
    recorder.flush("finished")
    return recorder.document


def _run_job(task: Task, dataset: Dataset, model: str, frame: pd.DataFrame, loaded: LoadedModel | None,
             features: ImageFeatures | None, suite: Suite, out: Path,
             scored: dict[tuple[str, str, str], Predictions]) -> dict[str, Any]:
    """One (task, model, dataset): its predictions file and metrics record."""
    from dermkit.evaluate.concepts import concept_report

    assert features is not None or task.type == "binary"
    path = predictions_path(task.name, model, dataset.name)
    levels = suite.options.hierarchy_levels
    if task.type in ("zero-shot", "linear-probe"):
        if task.type == "zero-shot":
            assert loaded is not None
            predictions, details = run_zero_shot(task, dataset, model, loaded, frame, features), {}  # type: ignore[arg-type]
        else:
            predictions, details = run_probe(task, dataset, model, frame, features)  # type: ignore[arg-type]
        scored[(task.name, model, dataset.name)] = predictions
        write_predictions(predictions, out / path)
        test = predictions.where(predictions.frame["split"] == task_split(task))
        return {"predictions": str(path), "split": task_split(task),
                **evaluate_predictions(test, suite, levels, task.settings.get("metrics")),
                "details": details}
    if task.type == "binary":
        predictions, result = run_binary(task, scored[(task.settings["from"], model, dataset.name)], suite)
        write_predictions(predictions, out / path)
        return {"predictions": str(path), "split": task_split(task), **result}
    if task.type == "retrieval":
        assert loaded is not None and features is not None
        ranks, result = run_retrieval(task, loaded, frame, features, suite)
        ranks_path = predictions_path(task.name, model, dataset.name, ".ranks.parquet")
        with atomic_path(out / ranks_path) as tmp:
            ranks.to_parquet(tmp, index=False)
        return {"predictions": str(ranks_path), "split": task_split(task), **result}
    assert loaded is not None and features is not None
    annotations = task.settings.get("annotations")
    report = concept_report(loaded, frame, None if annotations is None else resolve_path(annotations, suite.path.parent),
                            split=task.settings.get("split"), features=features, progress=False,
                            **scoring_options(suite))
    return {key: report.pop(key) for key in ("n", "resampled_by", "level", "n_boot", "min_stratum", "metrics",
                                             "strata")} | {"details": report}


def _run_classification(task: Task, suite: Suite, out: Path) -> list[dict[str, Any]]:
    """Metrics of predictions tables made elsewhere (e.g. a differential-diagnosis model)."""
    files = task.settings["predictions"]
    records = []
    for item in files if isinstance(files, list) else [files]:
        source = resolve_path(str(item), suite.path.parent)
        predictions = read_predictions(source)
        splits = predictions.frame["split"]
        split = "test" if (splits == "test").any() else None
        if split is not None:
            predictions = predictions.where(splits == split)
        sources = predictions.frame["source"].dropna().unique()
        dataset = str(sources[0]) if len(sources) == 1 else Path(str(item)).stem
        path = predictions_path(task.name, predictions.model_id, dataset)
        write_predictions(predictions, out / path)
        record = {"task": task.name, "type": task.type, "model": predictions.model_id, "dataset": dataset,
                  "predictions": str(path), "split": split,
                  **evaluate_predictions(predictions, suite, suite.options.hierarchy_levels, task.settings.get("metrics"))}
        if task.settings.get("card"):
            from dermkit.evaluate.card import source_data, write_evaluation_card

            card_model = resolve_path(str(task.settings["card"]), suite.path.parent)
            record["card"] = str(write_evaluation_card(card_model, record, data=source_data(dataset, split)))
        records.append(record)
    return records
