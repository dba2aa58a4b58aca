"""Linear probe on frozen, cached image features: how much a model's embedding already separates.

A multinomial logistic regression (full-batch L-BFGS) is fitted on the training split; its
inverse regularisation strength ``C`` is chosen on the validation split by balanced accuracy,
then the chosen fit is scored once on the test split. Besides the full training set, the probe
runs in low-data regimes (a fraction of the training set, or k cases per class), each over
several seeds, and reports mean ± sd: one seed says little when one draw holds one case per class.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dermkit.core.atomic import atomic_write_text
from dermkit.core.errors import InputError
from dermkit.data.table import read_table
from dermkit.evaluate.zeroshot import class_labels, resolve_classes
from dermkit.metrics import accuracy, balanced_accuracy, macro_auroc
from dermkit.models.encoding import (
    ImageMode,
    extract_image_features,
    resolve_model,
    select_split,
)

if TYPE_CHECKING:
    from dermkit.data.predictions import Predictions
    from dermkit.models.loaded import LoadedModel

DEFAULT_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-3, 3, 7))
DEFAULT_REGIMES: tuple[str, ...] = (
    "full", "fraction:0.01", "fraction:0.1", "shot:1", "shot:2", "shot:4", "shot:8", "shot:16",
)
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
MAX_ITER = 1000
PROBE_METRICS = ("balanced_accuracy", "accuracy", "macro_auroc")


@dataclass(frozen=True)
class ProbeData:
    """Unit features and class indices of the three splits (every row labelled)."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    n_classes: int


def sample_k_shot(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of exactly ``k`` rows per class, drawn without replacement (all rows of a rarer class)."""
    if k < 1:
        raise InputError(f"k must be positive, got {k}", field="k")
    chosen = [rng.choice(np.flatnonzero(labels == c), size=min(k, int(np.sum(labels == c))), replace=False)
              for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def sample_fraction(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A stratified ``fraction`` of the rows, at least one per class so every class can be learnt."""
    if not 0 < fraction <= 1:
        raise InputError(f"fraction must lie in (0, 1], got {fraction}", field="fraction")
    chosen = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        chosen.append(rng.choice(rows, size=max(1, round(fraction * rows.size)), replace=False))
    return np.sort(np.concatenate(chosen))


def regime_rows(regime: str, labels: np.ndarray, seed: int) -> np.ndarray:
    """The training rows of ``regime`` (``full``, ``fraction:F`` or ``shot:K``) for ``seed``."""
    kind, _, value = regime.partition(":")
    rng = np.random.default_rng(seed)
    try:
        if kind == "full" and not value:
            return np.arange(labels.size)
        if kind == "fraction":
            return sample_fraction(labels, float(value), rng)
        if kind == "shot":
            return sample_k_shot(labels, int(value), rng)
    except ValueError as exc:
        raise InputError(f"bad regime {regime!r}: {exc}", field="regimes") from exc
    raise InputError(f"unknown regime {regime!r}; use full, fraction:F or shot:K", field="regimes")


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    n_classes: int,
    cs: Sequence[float] = DEFAULT_CS,
) -> tuple[Any, float, dict[float, float]]:
    """The logistic regression with the best validation balanced accuracy, its C and every C's score.

    Ties go to the smaller C (the stronger regularisation), which generalises at least as well.
    """
    from sklearn.linear_model import LogisticRegression

    if not cs:
        raise InputError("no value of C to try", field="cs")
    best: tuple[float, Any, float] | None = None
    scores: dict[float, float] = {}
    for c in sorted(cs):
        classifier = LogisticRegression(C=c, solver="lbfgs", max_iter=MAX_ITER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at extreme C are expected
            classifier.fit(train_x, train_y)
        scores[c] = balanced_accuracy(class_probs(classifier, val_x, n_classes), val_y)
        if best is None or scores[c] > best[0]:
            best = (scores[c], classifier, c)
    assert best is not None
    return best[1], best[2], scores


def class_probs(classifier: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """N×C probabilities over all classes (zero for classes the training rows lacked), in float64 and
    summing to 1 at that precision (scikit-learn keeps float32 features' probabilities in float32)."""
    scores = classifier.predict_proba(x).astype(np.float64)
    probs = np.zeros((len(x), n_classes))
    probs[:, classifier.classes_] = scores / scores.sum(axis=1, keepdims=True)
    return probs


def run_linear_probe(
    data: ProbeData,
    regimes: Sequence[str] = DEFAULT_REGIMES,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    cs: Sequence[float] = DEFAULT_CS,
) -> dict[str, Any]:
    """Per regime: test metrics per seed and their mean ± sd, the chosen C and the training size.

    ``full`` uses every training row and L-BFGS is deterministic, so it runs once.
    """
    results: dict[str, Any] = {}
    for regime in regimes:
        runs = []
        for seed in seeds[:1] if regime == "full" else seeds:
            rows = regime_rows(regime, data.train_y, seed)
            if np.unique(data.train_y[rows]).size < 2:
                raise InputError(f"regime {regime!r} leaves fewer than two classes to learn", field="regimes")
            classifier, c, _ = fit_probe(
                data.train_x[rows], data.train_y[rows], data.val_x, data.val_y, data.n_classes, cs
            )
            probs = class_probs(classifier, data.test_x, data.n_classes)
            runs.append({
                "seed": seed,
                "C": c,
                "n_train": int(rows.size),
                "balanced_accuracy": balanced_accuracy(probs, data.test_y),
                "accuracy": accuracy(probs, data.test_y),
                "macro_auroc": macro_auroc(probs, data.test_y),
            })
        results[regime] = {
            **{name: _mean_sd([run[name] for run in runs]) for name in PROBE_METRICS},
            "runs": runs,
        }
    return results


def split_data(frame: pd.DataFrame, features: Any, class_ids: Sequence[str]) -> tuple[ProbeData, dict[str, pd.DataFrame]]:
    """Features and labels of the train, val and test splits (unlabelled cases dropped), and those cases."""
    cases, parts = {}, {}
    for split in ("train", "val", "test"):
        rows = select_split(frame, split)
        labels = class_labels(rows["diagnosis_id"].tolist(), class_ids)
        cases[split] = rows[labels >= 0].reset_index(drop=True)
        parts[f"{split}_x"] = features.by_case(cases[split]["case_id"].tolist())
        parts[f"{split}_y"] = labels[labels >= 0]
    return ProbeData(**parts, n_classes=len(class_ids)), cases


def probe_predictions(data: ProbeData, cases: dict[str, pd.DataFrame], class_ids: Sequence[str], model_id: str,
                      summary: dict[str, Any], cs: Sequence[float] = DEFAULT_CS) -> tuple[Predictions, float]:
    """The full-data probe's val and test predictions table, and its C (the summary's, when it ran ``full``)."""
    from dermkit.data.predictions import Predictions

    if "full" in summary:  # reuse the C the summary chose rather than searching again
        cs = [summary["full"]["runs"][0]["C"]]
    classifier, chosen, _ = fit_probe(data.train_x, data.train_y, data.val_x, data.val_y, data.n_classes, cs)
    parts = [Predictions.from_cases(cases[split], class_probs(classifier, getattr(data, f"{split}_x"), data.n_classes),
                                    getattr(data, f"{split}_y"), model_id=model_id, classes=class_ids)
             for split in ("val", "test")]
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    return Predictions(frame, model_id, tuple(class_ids)), chosen


def linear_probe_report(
    model: str | LoadedModel,
    table: str | Path | pd.DataFrame,
    *,
    classes: str | Sequence[str] | None = None,
    regimes: Sequence[str] = DEFAULT_REGIMES,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    images: ImageMode = "first",
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
    **scoring: Any,
) -> dict[str, Any]:
    """Probe ``model`` on ``table`` in every regime; also written as JSON to ``out`` when given.

    The full-data probe's test predictions are scored by the metric collection (``scoring``: its
    bootstrap and strata keywords): intervals and the per-group block, as in a suite.
    """
    from dermkit.evaluate.metrics.collection import score_predictions

    loaded = resolve_model(model)
    frame = table if isinstance(table, pd.DataFrame) else read_table(table)
    class_ids = resolve_classes(classes, frame)
    features = extract_image_features(loaded, frame, images=images, cache_dir=cache_dir)
    data, cases = split_data(frame, features, class_ids)
    summary = run_linear_probe(data, regimes, seeds)
    predictions, chosen = probe_predictions(data, cases, class_ids, loaded.name, summary)
    test = predictions.where(predictions.frame["split"] == "test")
    report = {
        "model": loaded.name,
        "n_classes": data.n_classes,
        "n_train": int(data.train_y.size),
        "n_val": int(data.val_y.size),
        "n_test": int(data.test_y.size),
        "C": chosen,
        **score_predictions(test, **scoring),
        "regimes": summary,
    }
    if out is not None:
        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    return report


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if array.size > 1 else 0.0}
