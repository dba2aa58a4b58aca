"""The one metric collection: every ``eval`` command, the suite runner and the model-card writer score here.

:func:`score_predictions` takes a predictions table and returns a JSON-ready dict: each headline
metric with its 95 % bootstrap interval (resampling patients, else lesions, else cases) and, per
grouping field the table has (Fitzpatrick I–II / III–IV / V–VI, Monk, sex, age band), the per-group
figures and the largest gap between groups with its own interval. :func:`score_rows` does the same
for any row-aligned arrays (retrieval ranks, concept scores), so those tasks report the same shape.

Every metric is a function ``(probs, truth)`` where ``truth`` is the N×C reference: the table's soft
reference (a differential aggregated from several graders) where it has one, else the one-hot label.

- ``top1_accuracy`` / ``top3_accuracy``: the reference's top condition is among the model's top k
  (the DLS definition). Tie rules: when the reference's top is tied, any of the tied conditions
  counts; tied model scores are ranked like ``sklearn.metrics.top_k_accuracy_score`` (among equal
  scores the higher class index ranks first), so a model that ties cannot gain from the tie by luck.
- ``average_top3_sensitivity``, ``average_overlap`` (at depth 3): only for tables with a reference
  differential (:mod:`.differential`).
- ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``cohen_kappa``, ``ece``: of the arg-max
  label; a row whose top score is tied is undecided and counts as wrong (:mod:`.inputs`).
- ``macro_auroc``, ``macro_average_precision``; and for the ``positive`` class (melanoma by default)
  ``<positive>_auroc`` and its sensitivity/specificity at the operating point: ``P(positive) >=
  threshold`` when a threshold chosen on validation is given, else the model's own decision (arg-max).
- A two-class table scored with a ``threshold`` (the suite's ``binary`` task) gets the binary set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from dermkit.core.errors import InputError
from dermkit.data.predictions import Predictions, resampling_units
from dermkit.evaluate.bootstrap import MetricFn, bootstrap_ci
from dermkit.evaluate.strata import STRATIFIABLE, UNKNOWN, stratify_rows, stratum_of
from dermkit.metrics.binary import (
    auroc,
    average_precision,
    partial_auc_above_tpr,
    rates_at_threshold,
    sensitivity_at_specificity,
)
from dermkit.metrics.calibration import expected_calibration_error
from dermkit.metrics.classification import (
    accuracy,
    balanced_accuracy,
    cohen_kappa,
    macro_f1,
)
from dermkit.metrics.differential import (
    average_overlap,
    average_top_k_sensitivity,
    differential_top_k_accuracy,
)
from dermkit.metrics.inputs import UndefinedMetricError, predicted_labels
from dermkit.metrics.ranking import macro_auroc, macro_average_precision

CLASSIFICATION_METRICS = (
    "accuracy", "balanced_accuracy", "macro_f1", "cohen_kappa", "top1_accuracy", "top3_accuracy", "macro_auroc",
    "macro_average_precision", "ece",
)
DIFFERENTIAL_METRICS = ("average_top3_sensitivity", "average_overlap")
POSITIVE_METRICS = ("auroc", "sensitivity", "specificity")  # prefixed with the positive class: melanoma_auroc
BINARY_METRICS = (
    "auroc", "average_precision", "sensitivity", "specificity", "ppv", "npv",
    "sensitivity_at_90_specificity", "partial_auc_above_80_tpr",
)
DEFAULT_POSITIVE = "melanoma"
DEFAULT_STRATA = ("fitzpatrick", "monk", "sex", "age")
DEFAULT_STRATA_METRICS = ("balanced_accuracy", "top3_accuracy", "auroc")
LOWER_IS_BETTER = ("ece",)
DEFAULT_BOOT = 1000
DEFAULT_MIN_STRATUM = 10


def _labels(truth: np.ndarray) -> np.ndarray:
    return np.argmax(truth, axis=1)


def _one_class(metric: Callable[..., float], index: int, *args: Any) -> MetricFn:
    """A binary metric of class ``index``'s score against ``reference label == index``."""
    return lambda probs, truth: float(metric(np.asarray(probs)[:, index], _labels(truth) == index, *args))


def _rate_at(name: str, index: int, threshold: float | None) -> MetricFn:
    """One class's sensitivity / specificity at ``threshold`` on its score, else at the arg-max decision."""

    def metric(probs: np.ndarray, truth: np.ndarray) -> float:
        called = predicted_labels(probs) == index if threshold is None else probs[:, index] >= threshold
        truly = _labels(truth) == index
        if name == "sensitivity":
            if not truly.any():
                raise UndefinedMetricError(f"no case of class {index} to measure sensitivity on")
            return float(called[truly].mean())
        if truly.all():
            raise UndefinedMetricError(f"no case outside class {index} to measure specificity on")
        return float((~called[~truly]).mean())

    return metric


def _binary_rate(name: str, threshold: float) -> MetricFn:
    return lambda probs, truth: float(getattr(rates_at_threshold(probs[:, 1], _labels(truth) == 1, threshold), name))


def metric_fns(classes: Sequence[str], *, differential: bool = False, threshold: float | None = None,
               positive: str | None = DEFAULT_POSITIVE) -> dict[str, MetricFn]:
    """Every metric of the collection that applies to these classes, by name, each ``(probs, truth N×C)``."""
    if threshold is not None and len(classes) == 2:
        return {
            "auroc": _one_class(auroc, 1),
            "average_precision": _one_class(average_precision, 1),
            **{name: _binary_rate(name, threshold) for name in ("sensitivity", "specificity", "ppv", "npv")},
            "sensitivity_at_90_specificity": _one_class(sensitivity_at_specificity, 1, 0.9),
            "partial_auc_above_80_tpr": _one_class(partial_auc_above_tpr, 1, 0.8),
        }
    k = min(3, len(classes))
    fns: dict[str, MetricFn] = {
        "accuracy": accuracy,
        "balanced_accuracy": balanced_accuracy,
        "macro_f1": macro_f1,
        "cohen_kappa": cohen_kappa,
        "top1_accuracy": partial(differential_top_k_accuracy, k=1),
        "top3_accuracy": partial(differential_top_k_accuracy, k=k),
        "macro_auroc": macro_auroc,
        "macro_average_precision": macro_average_precision,
        "ece": expected_calibration_error,
    }
    if differential:
        fns["average_top3_sensitivity"] = partial(average_top_k_sensitivity, k=k)
        fns["average_overlap"] = partial(average_overlap, k=k)
    if positive is not None and positive in classes:
        index = list(classes).index(positive)
        fns[f"{positive}_auroc"] = _one_class(auroc, index)
        fns[f"{positive}_sensitivity"] = _rate_at("sensitivity", index, threshold)
        fns[f"{positive}_specificity"] = _rate_at("specificity", index, threshold)
    return fns


def reference(predictions: Predictions) -> tuple[Predictions, np.ndarray, bool]:
    """The labelled rows, their N×C reference (soft where every row has one, else one-hot) and which it is."""
    labelled = predictions.labelled()
    targets = labelled.frame["target"]
    differential = len(labelled) > 0 and bool(targets.map(lambda t: t is not None and hasattr(t, "__len__")).all())
    if differential:
        truth = np.stack(targets.to_numpy()).astype(np.float64)
    else:
        truth = np.eye(len(predictions.classes))[labelled.labels()]
    return labelled, truth, differential


def resampled_by(frame: pd.DataFrame) -> str:
    """What the bootstrap resamples: patients, else lesions, else single cases."""
    for column, unit in (("patient_id", "patient"), ("lesion_id", "lesion")):
        if column in frame and frame[column].notna().any():
            return unit
    return "case"


def _interval(metric: MetricFn, preds: np.ndarray, truth: np.ndarray, units: np.ndarray, n_boot: int, level: float,
              seed: int) -> dict[str, Any]:
    try:
        result = bootstrap_ci(metric, preds, truth, units, n_boot=n_boot, level=level, seed=seed)
    except UndefinedMetricError as exc:
        return {"estimate": None, "low": None, "high": None, "undefined": str(exc)}
    return {"estimate": result.estimate, "low": result.low, "high": result.high, "n_boot": result.n_boot,
            "n_groups": result.n_groups, "n_skipped": result.n_skipped}


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not np.isfinite(value) else value


def fields_present(frame: pd.DataFrame, strata: Sequence[str]) -> list[str]:
    """The grouping fields some row of ``frame`` has a value for."""
    for field in strata:
        if field not in STRATIFIABLE:
            raise InputError(f"cannot stratify by {field!r}; choose one of {STRATIFIABLE}", field="strata")
    return [f for f in strata if f in frame and (stratum_of(frame, f) != UNKNOWN).any()]


def score_rows(
    fns: Mapping[str, MetricFn],
    preds: np.ndarray,
    truth: np.ndarray,
    frame: pd.DataFrame,
    *,
    n_boot: int = DEFAULT_BOOT,
    level: float = 0.95,
    seed: int = 0,
    strata: Sequence[str] = DEFAULT_STRATA,
    strata_metrics: Sequence[str] = DEFAULT_STRATA_METRICS,
    min_stratum: int = DEFAULT_MIN_STRATUM,
    lower_is_better: Sequence[str] = LOWER_IS_BETTER,
) -> dict[str, Any]:
    """Each metric with its interval, and per grouping field of ``frame`` the per-group block.

    The per-group block covers the metrics of ``strata_metrics`` that ``fns`` has, else the first
    (headline) metric of ``fns``; rows of ``frame`` are the cases behind ``preds``/``truth``.
    """
    units = resampling_units(frame)
    metrics = {name: _interval(fn, preds, truth, units, n_boot, level, seed) for name, fn in fns.items()}
    grouped = [m for m in strata_metrics if m in fns] or list(fns)[:1]
    per_group: dict[str, Any] = {}
    for field in fields_present(frame, strata):
        per_group[field] = {}
        for name in grouped:
            result = stratify_rows(fns[name], preds, truth, frame, field, min_stratum, n_boot, level, seed,
                                   higher_is_better=name not in lower_is_better)
            rows = [{key: _nan_to_none(value) for key, value in row.items()}
                    for row in result.table.to_dict(orient="records")]
            per_group[field][name] = {
                "rows": rows,
                "gap": {"estimate": _nan_to_none(result.gap), "low": _nan_to_none(result.gap_low),
                        "high": _nan_to_none(result.gap_high), "best": result.best, "worst": result.worst,
                        "n_skipped": result.gap_skipped},
            }
    return {"n": len(frame), "resampled_by": resampled_by(frame), "level": level, "n_boot": n_boot,
            "min_stratum": min_stratum, "metrics": metrics, "strata": per_group}


def score_predictions(
    predictions: Predictions,
    *,
    metrics: Sequence[str] | None = None,
    threshold: float | None = None,
    positive: str | None = DEFAULT_POSITIVE,
    **scoring: Any,
) -> dict[str, Any]:
    """The collection's figures of a predictions table's labelled rows (``metrics``: a subset by name).

    ``scoring`` holds :func:`score_rows`'s bootstrap and strata keywords (``n_boot``, ``level``, ``seed``,
    ``strata``, ``strata_metrics``, ``min_stratum``), with its defaults.
    """
    labelled, truth, differential = reference(predictions)
    if len(labelled) == 0:
        raise InputError("no labelled case to score (every row has label -1)", field="label")
    fns = metric_fns(predictions.classes, differential=differential, threshold=threshold, positive=positive)
    if metrics is not None:
        unknown = [name for name in metrics if name not in fns]
        if unknown:
            raise InputError(f"unknown or inapplicable metrics {unknown}; this table has {list(fns)}", field="metrics")
        fns = {name: fns[name] for name in metrics}
    scored = score_rows(fns, labelled.probs(), truth, labelled.frame, **scoring)
    out: dict[str, Any] = {"n": len(labelled), "n_unlabelled": len(predictions) - len(labelled),
                           "classes": list(predictions.classes),
                           "reference": "differential" if differential else "label", **scored}
    if f"{positive}_sensitivity" in fns:
        out["operating_point"] = {"positive": positive, "threshold": threshold,
                                  "rule": "arg-max decision" if threshold is None else "P(positive) >= threshold"}
    return out
