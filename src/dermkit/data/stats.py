"""Dataset statistics of a case table: counts per grouping, missingness, totals.

:func:`table_stats` returns a plain, JSON-ready dict so the CLI, reports and the demo share one
computation; :func:`plot_stats` draws that dict and never recomputes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tqdm.auto import tqdm

from dermkit.core.atomic import atomic_path
from dermkit.core.errors import InputError
from dermkit.data import schema
from dermkit.data.table import read_table
from dermkit.ontology import Ontology, UnknownTermError, default_ontology

# (label, lowest age, highest age); ages are binned by their whole years.
AGE_BANDS: tuple[tuple[str, int, float], ...] = (
    ("0-17", 0, 17), ("18-29", 18, 29), ("30-39", 30, 39), ("40-49", 40, 49),
    ("50-59", 50, 59), ("60-69", 60, 69), ("70-79", 70, 79), ("80+", 80, math.inf),
)
# Groupings whose categories have a natural order (kept in it rather than sorted by count).
ORDERED = {"fitzpatrick": schema.FITZPATRICK_TYPES, "monk": schema.MONK_TONES,
           "age_band": tuple(label for label, *_ in AGE_BANDS), "split": schema.SPLITS}
PLAIN_GROUPINGS = ("fitzpatrick", "monk", "body_site", "sex", "source", "acquisition", "split")
MAX_BARS = 40  # more categories than this are cut to the most frequent, so labels stay readable


def age_band(age: float | None) -> str | None:
    """The band label of an age in years (None stays None)."""
    if age is None or pd.isna(age):
        return None
    years = math.floor(age)
    return next(label for label, low, high in AGE_BANDS if low <= years <= high)


def _counts(values: pd.Series, grouping: str) -> dict[str, int]:
    """Non-null value counts with string keys: natural order where there is one, else by count."""
    present = values.dropna()
    if grouping in ("fitzpatrick", "monk"):
        present = present.astype(int)
    counts = present.value_counts()
    if grouping in ORDERED:
        order = [v for v in ORDERED[grouping] if v in counts.index]
        counts = counts.reindex(order)
    else:
        counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    return {str(k): int(v) for k, v in counts.items()}


def condition_levels(diagnoses: pd.Series, ontology: Ontology) -> dict[str, pd.Series]:
    """The diagnosis id lifted to every level of the condition hierarchy (1 = broadest)."""
    lifted: dict[str, pd.Series] = {}
    for level in range(1, ontology.conditions.depth() + 1):
        mapping = {}
        for term in diagnoses.dropna().unique():
            try:
                mapping[term] = ontology.conditions.at_level(term, level).id
            except UnknownTermError as exc:
                row = int(diagnoses.index[diagnoses == term][0]) + 1
                raise InputError(f"diagnosis id {term!r} is not in the ontology", row=row,
                                 field="diagnosis_id") from exc
        lifted[f"condition_level_{level}"] = diagnoses.map(mapping)
    return lifted


def table_stats(frame: pd.DataFrame, *, name: str = "table", ontology: Ontology | None = None) -> dict[str, Any]:
    """Totals, counts per grouping and the share of nulls of every schema column."""
    frame = frame.reset_index(drop=True)
    groupings: dict[str, pd.Series] = {"diagnosis_id": frame["diagnosis_id"]}
    groupings.update(condition_levels(frame["diagnosis_id"], ontology or default_ontology()))
    groupings["age_band"] = frame["age"].map(age_band)
    groupings.update({g: frame[g] for g in PLAIN_GROUPINGS})
    return {
        "table": name,
        "cases": len(frame),
        "images": int(frame["image_paths"].map(len).sum()),
        "patients": int(frame["patient_id"].nunique(dropna=True)),
        "lesions": int(frame["lesion_id"].nunique(dropna=True)),
        "counts": {g: _counts(values, g) for g, values in groupings.items()},
        "missing": {c: round(float(frame[c].isna().mean()), 4) if len(frame) else 0.0 for c in schema.COLUMNS},
    }


def stats_for_table(table_dir: str | Path, ontology: Ontology | None = None) -> dict[str, Any]:
    """:func:`table_stats` of the case table at ``table_dir``, named after its directory."""
    return table_stats(read_table(table_dir), name=Path(table_dir).name, ontology=ontology)


def _bar_chart(values: Mapping[str, float], title: str, xlabel: str, target: Path, fmt: str = "%g") -> None:
    """A horizontal bar chart (long labels stay readable), first category on top, written atomically."""
    labels, heights = list(values)[::-1], list(values.values())[::-1]
    figure = Figure(figsize=(7, 1.2 + 0.28 * len(labels)), layout="constrained")
    axes = figure.add_subplot()
    bars = axes.barh(labels, heights, color="#4a7ab0")
    axes.bar_label(bars, fmt=fmt, padding=2, fontsize=8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(xlabel)
    axes.tick_params(axis="y", labelsize=8)
    axes.margins(x=0.12)
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def plot_stats(stats: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """One PNG bar chart per non-empty grouping, plus one of missingness; return the paths."""
    out_dir = Path(out_dir)
    table = stats["table"]
    written = []
    charts = [(g, c) for g, c in stats["counts"].items() if c]
    for grouping, counts in tqdm(charts, desc="plotting", unit="chart", leave=False):
        shown = dict(list(counts.items())[:MAX_BARS])
        cut = f" (top {MAX_BARS} of {len(counts)})" if len(counts) > MAX_BARS else ""
        target = out_dir / f"{grouping}.png"
        _bar_chart(shown, f"{table}: cases by {grouping.replace('_', ' ')}{cut}", "cases", target)
        written.append(target)
    target = out_dir / "missing.png"
    percent = {column: 100 * share for column, share in stats["missing"].items()}
    _bar_chart(percent, f"{table}: missing values per field", "% of cases", target, fmt="%.0f%%")
    written.append(target)
    return written


def format_stats(stats: Mapping[str, Any]) -> str:
    """Plain-text rendering of :func:`table_stats`: totals, each grouping, then missingness."""
    totals = (f"{stats['table']}: {stats['cases']} cases, {stats['images']} images, "
              f"{stats['patients']} patients, {stats['lesions']} lesions")
    lines = [totals]
    for grouping, counts in stats["counts"].items():
        cells = ", ".join(f"{k} {v}" for k, v in counts.items()) or "(none)"
        lines.append(f"{grouping}: {cells}")
    missing = {c: s for c, s in stats["missing"].items() if s > 0}
    lines.append("missing: " + (", ".join(f"{c} {s:.1%}" for c, s in missing.items()) or "nothing"))
    return "\n".join(lines)
