"""Scoring and comparing classifiers from their predictions tables, with patient-level bootstrap CIs.

Used for the differential-diagnosis ablations (image + history vs image only vs history only) and
the imbalance recipes on HAM10000: balanced accuracy with its CI, one class's AUROC (melanoma),
and a paired bootstrap of the difference between two models on the same cases.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dermkit.core.errors import InputError
from dermkit.data.table import read_table
from dermkit.evaluate.bootstrap import bootstrap_ci, paired_bootstrap
from dermkit.evaluate.metrics import auroc, balanced_accuracy
from dermkit.evaluate.predictions import Predictions, resampling_units


def class_auroc(index: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """AUROC of one class against the rest, as a ``metric(probs, labels)`` for the bootstrap."""

    def metric(probs: np.ndarray, labels: np.ndarray) -> float:
        return auroc(probs[:, index], labels == index)

    return metric


def score(predictions: Predictions, positive: str | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Balanced accuracy (and ``positive``'s AUROC) with 95 % CIs resampling patients (else lesions)."""
    labelled = predictions.labelled()
    probs, labels, groups = labelled.probs(), labelled.labels(), resampling_units(labelled.frame)
    out: dict[str, Any] = {"cases": len(labelled)}
    metrics: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"balanced_accuracy": balanced_accuracy}
    if positive is not None:
        metrics[f"{positive}_auroc"] = class_auroc(_index(labelled, positive))
    for name, metric in metrics.items():
        result = bootstrap_ci(metric, probs, labels, groups, n_boot=n_boot, seed=seed)
        out[name] = {"estimate": result.estimate, "ci95": [result.low, result.high]}
    return out


def compare(a: Predictions, b: Predictions, mask: np.ndarray | None = None, n_boot: int = 2000,
            seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of balanced accuracy, ``a − b``, on the cases both tables hold (``mask`` on ``a``'s rows)."""
    if a.classes != b.classes:
        raise InputError("the two predictions tables score different class lists")
    a = a.labelled() if mask is None else a.where(mask).labelled()
    b_frame = b.frame.set_index("case_id")
    missing = set(a.frame["case_id"]) - set(b_frame.index)
    if missing:
        raise InputError(f"{len(missing)} cases of the first table are not in the second, e.g. {min(missing)}")
    b_probs = np.stack(b_frame.loc[a.frame["case_id"], "probs"].to_numpy())
    result = paired_bootstrap(balanced_accuracy, a.probs(), b_probs, a.labels(), resampling_units(a.frame),
                              n_boot=n_boot, seed=seed)
    return {"cases": len(a), "balanced_accuracy_a": result.estimate_a, "balanced_accuracy_b": result.estimate_b,
            "difference": result.estimate, "ci95": [result.low, result.high], "p_value": result.p_value,
            "n_boot": result.n_boot, "n_skipped": result.n_skipped}


def complete_history_mask(predictions: Predictions, table: str | Path) -> np.ndarray:
    """Rows whose case answers every history question that the table records for any case.

    PAD-UFES-20 records history only for biopsied lesions, so a model can learn "history missing,
    hence benign"; comparing on these cases measures what the history says, not whether it exists.
    """
    history = read_table(table).set_index("case_id")["history"]
    missing = set(predictions.frame["case_id"]) - set(history.index)
    if missing:
        raise InputError(f"{len(missing)} predicted cases are not in the table, e.g. {min(missing)}", file=table)
    asked = {key for answers in history if answers for key, value in answers.items() if value is not None}
    recorded = history.loc[predictions.frame["case_id"]]
    return np.array([bool(asked) and asked <= {k for k, v in (h or {}).items() if v is not None} for h in recorded],
                    dtype=bool)


def _index(predictions: Predictions, condition: str) -> int:
    if condition not in predictions.classes:
        raise InputError(f"{condition!r} is not among the classes {list(predictions.classes)}")
    return predictions.classes.index(condition)
