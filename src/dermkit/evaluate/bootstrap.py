"""Bootstrap confidence intervals that resample patients, not rows, and paired model comparisons.

Cases of one patient are correlated; resampling rows would treat them as independent evidence and
give intervals that are too narrow. Here whole groups (patient ids) are drawn with replacement and
all their rows come along; a row without a patient id is its own group. A resample on which the
metric is undefined (it raises :class:`UndefinedMetricError` or returns NaN, e.g. AUROC on a
single-class resample) is skipped and counted in ``n_skipped``. Intervals are percentile intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dermkit.core import InputError
from dermkit.metrics.inputs import UndefinedMetricError

MetricFn = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class BootstrapResult:
    """A metric's estimate on all cases and its percentile confidence interval."""

    estimate: float
    low: float
    high: float
    n_boot: int
    n_groups: int
    n_skipped: int


@dataclass(frozen=True)
class PairedBootstrapResult:
    """Difference ``metric(a) - metric(b)`` on the same cases, its interval and two-sided p-value."""

    estimate: float
    low: float
    high: float
    p_value: float
    estimate_a: float
    estimate_b: float
    n_boot: int
    n_groups: int
    n_skipped: int


def group_codes(groups: Sequence[object] | np.ndarray | None, n_rows: int) -> np.ndarray:
    """Integer group per row; missing ids (None/NaN), or no ids at all, give each row its own group."""
    if groups is None:
        return np.arange(n_rows)
    codes, uniques = pd.factorize(np.asarray(groups, dtype=object))
    if codes.shape[0] != n_rows:
        raise InputError(f"{codes.shape[0]} group ids for {n_rows} rows", field="groups")
    missing = codes < 0
    codes[missing] = len(uniques) + np.arange(missing.sum())
    return codes


class _GroupSampler:
    """Draws the row indices of one group resample per call, reproducibly from one seed."""

    def __init__(self, codes: np.ndarray, seed: int) -> None:
        self.order = np.argsort(codes, kind="stable")
        self.sizes = np.bincount(codes)
        self.starts = np.r_[0, np.cumsum(self.sizes)[:-1]]
        self.n_groups = self.sizes.size
        self.rng = np.random.default_rng(seed)

    def draw(self) -> np.ndarray:
        """Rows of ``n_groups`` groups drawn with replacement (vectorised, no Python loop)."""
        chosen = self.rng.integers(0, self.n_groups, self.n_groups)
        lengths = self.sizes[chosen]
        ends = np.cumsum(lengths)
        offsets = np.repeat(self.starts[chosen] - (ends - lengths), lengths)
        return self.order[np.arange(ends[-1]) + offsets]


def _safe(metric: MetricFn, preds: np.ndarray, target: np.ndarray) -> float:
    """The metric's value, NaN where it is undefined on this resample."""
    try:
        return float(metric(preds, target))
    except UndefinedMetricError:
        return np.nan


def _defined(metric: MetricFn, preds: np.ndarray, target: np.ndarray, what: str) -> float:
    """The metric on the full data, which must be defined for an interval to make sense."""
    value = _safe(metric, preds, target)
    if not np.isfinite(value):
        raise UndefinedMetricError(f"{what} is undefined on the full data; no interval can be drawn")
    return value


def _check_sizes(n_boot: int, level: float, *arrays: np.ndarray) -> int:
    """Number of rows shared by ``arrays``, after checking the bootstrap settings."""
    if n_boot < 1:
        raise InputError(f"n_boot must be positive, got {n_boot}", field="n_boot")
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level}", field="level")
    sizes = {array.shape[0] for array in arrays}
    if len(sizes) != 1:
        raise InputError(f"inputs have different numbers of rows: {sorted(sizes)}")
    return sizes.pop()


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite values (NaN, NaN when none is)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.nan, np.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    metric: MetricFn,
    preds: object,
    target: object,
    groups: Sequence[object] | np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Estimate and percentile CI of ``metric(preds, target)``, resampling ``groups`` (patients)."""
    preds_array, target_array = np.asarray(preds), np.asarray(target)
    n_rows = _check_sizes(n_boot, level, preds_array, target_array)
    estimate = _defined(metric, preds_array, target_array, "the metric")
    sampler = _GroupSampler(group_codes(groups, n_rows), seed)
    values = np.empty(n_boot)
    for index in range(n_boot):
        rows = sampler.draw()
        values[index] = _safe(metric, preds_array[rows], target_array[rows])
    low, high = _interval(values, level)
    return BootstrapResult(
        estimate=estimate,
        low=low,
        high=high,
        n_boot=n_boot,
        n_groups=sampler.n_groups,
        n_skipped=int(np.sum(~np.isfinite(values))),
    )


def paired_bootstrap(
    metric: MetricFn,
    preds_a: object,
    preds_b: object,
    target: object,
    groups: Sequence[object] | np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedBootstrapResult:
    """Compare two models on the same cases: CI of ``metric(a) - metric(b)`` and a two-sided p.

    Both models are scored on the same resampled groups, so case difficulty cancels out. The
    p-value tests "no difference" with the shifted bootstrap distribution: the share of resampled
    differences at least as far from the observed one as the observed one is from zero.
    """
    a, b, truth = np.asarray(preds_a), np.asarray(preds_b), np.asarray(target)
    n_rows = _check_sizes(n_boot, level, a, b, truth)
    estimate_a = _defined(metric, a, truth, "the metric of model a")
    estimate_b = _defined(metric, b, truth, "the metric of model b")
    observed = estimate_a - estimate_b
    sampler = _GroupSampler(group_codes(groups, n_rows), seed)
    differences = np.empty(n_boot)
    for index in range(n_boot):
        rows = sampler.draw()
        differences[index] = _safe(metric, a[rows], truth[rows]) - _safe(metric, b[rows], truth[rows])
    finite = differences[np.isfinite(differences)]
    low, high = _interval(differences, level)
    extreme = np.sum(np.abs(finite - observed) >= abs(observed))
    return PairedBootstrapResult(
        estimate=observed,
        low=low,
        high=high,
        p_value=float((extreme + 1) / (finite.size + 1)),
        estimate_a=estimate_a,
        estimate_b=estimate_b,
        n_boot=n_boot,
        n_groups=sampler.n_groups,
        n_skipped=n_boot - finite.size,
    )
