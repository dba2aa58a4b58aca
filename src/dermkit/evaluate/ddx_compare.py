"""Comparing two classifiers from their predictions tables: a paired, patient-level bootstrap.

Used for the differential-diagnosis ablations (image + history vs image only vs history only) and
the imbalance recipes on HAM10000. Scoring one table is the metric collection's job
(:mod:`dermkit.evaluate.metrics.collection`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dermkit.core.errors import InputError
from dermkit.data.predictions import Predictions, resampling_units
from dermkit.data.table import read_table
from dermkit.evaluate.bootstrap import paired_bootstrap
from dermkit.evaluate.metrics.collection import (
    DEFAULT_MIN_STRATUM,
    DEFAULT_STRATA,
    fields_present,
)
from dermkit.evaluate.strata import stratum_of
from dermkit.metrics import balanced_accuracy


def compare(a: Predictions, b: Predictions, mask: np.ndarray | None = None, n_boot: int = 2000,
            seed: int = 0, min_stratum: int = DEFAULT_MIN_STRATUM) -> dict[str, Any]:
    """Paired bootstrap of balanced accuracy, ``a − b``, on the cases both tables hold (``mask`` on ``a``'s rows),
    overall and within each skin-type, sex and age group (``strata``; groups under ``min_stratum`` cases get their size only)."""
    if a.classes != b.classes:
        raise InputError("the two predictions tables score different class lists")
    a = a.labelled() if mask is None else a.where(mask).labelled()
    b_frame = b.frame.set_index("case_id")
    missing = set(a.frame["case_id"]) - set(b_frame.index)
    if missing:
        raise InputError(f"{len(missing)} cases of the first table are not in the second, e.g. {min(missing)}")
    b_probs = np.stack(b_frame.loc[a.frame["case_id"], "probs"].to_numpy())
    a_probs, labels, units = a.probs(), a.labels(), np.asarray(resampling_units(a.frame))

    def paired(rows: np.ndarray) -> dict[str, Any]:
        result = paired_bootstrap(balanced_accuracy, a_probs[rows], b_probs[rows], labels[rows], units[rows],
                                  n_boot=n_boot, seed=seed)
        return {"balanced_accuracy_a": result.estimate_a, "balanced_accuracy_b": result.estimate_b,
                "difference": result.estimate, "ci95": [result.low, result.high], "p_value": result.p_value,
                "n_boot": result.n_boot, "n_skipped": result.n_skipped}

    strata: dict[str, list[dict[str, Any]]] = {}
    for field in fields_present(a.frame, DEFAULT_STRATA):
        names = stratum_of(a.frame, field).to_numpy()
        strata[field] = [{"stratum": name, "n": int((names == name).sum()),
                          **(paired(names == name) if (names == name).sum() >= min_stratum else {"scored": False})}
                         for name in sorted(set(names))]
    return {"cases": len(a), **paired(np.ones(len(a), dtype=bool)), "strata": strata}


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
