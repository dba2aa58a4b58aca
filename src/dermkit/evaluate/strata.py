"""Any metric per stratum (skin type, sex, age band, acquisition, source), with CIs and the gap.

Skin types are pooled into the groups commonly reported, so that each has enough cases:
Fitzpatrick I-II / III-IV / V-VI, and Monk 1-3 (light) / 4-7 (medium) / 8-10 (dark). Age is
banded at 18, 40, 60 and 80 years. Rows whose field is missing form an ``unknown`` stratum that
is reported but never enters the gap. The gap is the difference between the best and the worst
stratum among those with at least ``min_n`` cases and a defined metric; its interval comes from the
same patient bootstrap: on each resample the metric is recomputed in every eligible stratum and the
largest difference taken (a resample on which some stratum's metric is undefined is skipped).
Strata too small to enter the gap are still listed with their size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from dermkit.core import InputError
from dermkit.data.predictions import Predictions, resampling_units
from dermkit.data.schema import FITZPATRICK_GROUPS
from dermkit.evaluate.bootstrap import MetricFn, bootstrap_ci
from dermkit.metrics.inputs import UndefinedMetricError

MONK_GROUPS: dict[str, tuple[int, ...]] = {"1-3": (1, 2, 3), "4-7": (4, 5, 6, 7), "8-10": (8, 9, 10)}
AGE_EDGES = (18, 40, 60, 80)
AGE_BANDS = ("<18", "18-39", "40-59", "60-79", "80+")
UNKNOWN = "unknown"
FIXED_STRATA = {"fitzpatrick": tuple(FITZPATRICK_GROUPS), "monk": tuple(MONK_GROUPS), "age": AGE_BANDS}
STRATIFIABLE = ("fitzpatrick", "monk", "sex", "age", "acquisition", "source", "body_site")


@dataclass(frozen=True)
class Strata:
    """Per-stratum rows (stratum, n, n_groups, estimate, low, high, n_skipped, eligible) and the gap."""

    field: str
    table: pd.DataFrame
    gap: float
    best: str | None
    worst: str | None
    gap_low: float = np.nan
    gap_high: float = np.nan
    gap_skipped: int = 0


def _grouped(values: pd.Series, groups: dict[str, tuple[int, ...]]) -> pd.Series:
    """Map integer scale values to their named group."""
    lookup = {value: name for name, members in groups.items() for value in members}
    return values.map(lambda value: lookup.get(int(value)) if pd.notna(value) else None)


def stratum_of(frame: pd.DataFrame, field: str) -> pd.Series:
    """The stratum name of every row for ``field`` (``unknown`` where the field is missing)."""
    if field not in STRATIFIABLE:
        raise InputError(f"cannot stratify by {field!r}; choose one of {STRATIFIABLE}", field=field)
    values = frame[field]
    if field == "fitzpatrick":
        names = _grouped(values, FITZPATRICK_GROUPS)
    elif field == "monk":
        names = _grouped(values, MONK_GROUPS)
    elif field == "age":
        bands = np.searchsorted(AGE_EDGES, values.to_numpy(dtype=np.float64), side="right")
        names = pd.Series(np.array(AGE_BANDS, dtype=object)[np.minimum(bands, len(AGE_BANDS) - 1)], index=frame.index)
        names[values.isna()] = None
    else:
        names = values.astype(object)
    return names.where(names.notna(), UNKNOWN).astype(str)


def _with_truth(predictions: Predictions, target: str) -> tuple[Predictions, np.ndarray]:
    """The rows that have ground truth of the requested kind, and that truth as an array."""
    if target == "label":
        kept = predictions.labelled()
        return kept, kept.labels()
    if target == "target":
        kept = predictions.where(predictions.frame["target"].notna())
        return kept, np.stack(kept.frame["target"].to_numpy()).astype(np.float64)
    raise InputError(f"target must be 'label' or 'target', got {target!r}", field="target")


def stratify(
    predictions: Predictions,
    metric: MetricFn,
    by: str,
    min_n: int = 10,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    target: Literal["label", "target"] = "label",
    higher_is_better: bool = True,
) -> Strata:
    """``metric(probs, target)`` per stratum of ``by``, each with n and a patient-bootstrap CI.

    Unlabelled rows (or, with ``target="target"``, rows without soft weights) are left out first.
    """
    kept, truth = _with_truth(predictions, target)
    return stratify_rows(metric, kept.probs(), truth, kept.frame, by, min_n, n_boot, level, seed, higher_is_better)


def stratify_rows(
    metric: MetricFn,
    preds: np.ndarray,
    truth: np.ndarray,
    frame: pd.DataFrame,
    by: str,
    min_n: int = 10,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    higher_is_better: bool = True,
) -> Strata:
    """``metric(preds, truth)`` per stratum of ``by`` for any row-aligned arrays (ranks, concept scores...),
    with ``frame`` holding the rows' grouping fields; the gap between strata with its bootstrap interval."""
    names, patients = stratum_of(frame, by).to_numpy(), resampling_units(frame)
    rows = []
    for name in sorted(set(names) | set(FIXED_STRATA.get(by, ()))):  # a named group without cases shows n = 0
        mask = names == name
        try:
            if not mask.any():
                raise UndefinedMetricError(f"no case in stratum {name}")
            result = bootstrap_ci(metric, preds[mask], truth[mask], patients[mask], n_boot, level, seed)
            values = {
                "n_groups": result.n_groups,
                "estimate": result.estimate,
                "low": result.low,
                "high": result.high,
                "n_skipped": result.n_skipped,
            }
        except UndefinedMetricError:
            values = {"n_groups": np.nan, "estimate": np.nan, "low": np.nan, "high": np.nan, "n_skipped": n_boot}
        n = int(mask.sum())
        eligible = name != UNKNOWN and n >= min_n and bool(np.isfinite(values["estimate"]))
        rows.append({"stratum": name, "n": n, **values, "eligible": eligible})
    table = pd.DataFrame(rows, columns=["stratum", "n", "n_groups", "estimate", "low", "high", "n_skipped", "eligible"])
    ranked = table[table["eligible"]].sort_values("estimate", ascending=not higher_is_better)
    if len(ranked) < 2:
        return Strata(by, table, np.nan, None, None)
    best, worst = ranked.iloc[0], ranked.iloc[-1]
    masks = [names == name for name in ranked["stratum"]]

    def gap(rows: np.ndarray, _: np.ndarray) -> float:
        values = []
        for mask in masks:
            chosen = rows[mask[rows]]
            if chosen.size == 0:
                return np.nan
            values.append(metric(preds[chosen], truth[chosen]))
        return float(np.max(values) - np.min(values))

    indices = np.arange(len(frame))
    interval = bootstrap_ci(gap, indices, indices, patients, n_boot, level, seed)
    return Strata(by, table, interval.estimate, str(best["stratum"]), str(worst["stratum"]),
                  interval.low, interval.high, interval.n_skipped)
