"""The report of a suite run: one self-contained HTML file and a Markdown version, never re-running a model.

Everything comes from the run directory: ``results.json`` for estimates, intervals, strata and
ontology levels, and the predictions tables for the curves (ROC, confusion matrix, reliability
diagram). The HTML inlines every plot as a base64 PNG, so it opens anywhere with no network and
can be mailed as one file; the Markdown file links the same PNGs, written beside it.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dermkit.core.atomic import atomic_dir, atomic_write_text
from dermkit.core.errors import InputError
from dermkit.data.predictions import Predictions, read_predictions
from dermkit.evaluate.runner import RESULTS_FILE
from dermkit.evaluate.strata import UNKNOWN
from dermkit.metrics import (
    UndefinedMetricError,
    confusion_matrix,
    reliability,
    roc_curve,
)

CLASS_TYPES = ("zero-shot", "linear-probe", "classification")
FIGURE_DPI = 110


@dataclass(frozen=True)
class Figure:
    """One plot: its file name (for the Markdown version), caption and PNG bytes."""

    name: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Section:
    """One task on one dataset: the comparison table across models and its plots."""

    task: str
    type: str
    dataset: str
    columns: list[str]
    rows: list[dict[str, Any]]
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_tables: list[dict[str, Any]] = field(default_factory=list)


def format_ci(entry: Mapping[str, Any] | None) -> str:
    """``0.812 [0.781, 0.843]``; a dash where the metric is undefined."""
    if not entry or entry.get("estimate") is None:
        return "–"
    text = f"{entry['estimate']:.3f}"
    if entry.get("low") is not None and entry.get("high") is not None:
        text += f" [{entry['low']:.3f}, {entry['high']:.3f}]"
    return text


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _new_figure(width: float = 4.6, height: float = 3.6) -> tuple[Any, Any]:
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(width, height))
    return figure, figure.add_subplot()


def _slug(*parts: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else "_" for ch in part) for part in parts)


def _evaluated(run: Path, record: Mapping[str, Any]) -> Predictions:
    """The rows a record's metrics were computed on (its split; all rows where it has none)."""
    predictions = read_predictions(run / record["predictions"])
    split = record.get("split", "test")
    return predictions if split is None else predictions.where(predictions.frame["split"] == split)


def roc_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray, str]], title: str, name: str) -> Figure:
    """ROC curves of several models on one set of axes (label, fpr, tpr, legend text)."""
    figure, axes = _new_figure()
    for _, fpr, tpr, legend in curves:
        axes.plot(fpr, tpr, label=legend)  # straight segments: tied scores move together, as in the AUROC
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(xlabel="1 − specificity (FPR)", ylabel="sensitivity (TPR)", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right", fontsize=7)
    return Figure(name, title, _png(figure))


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], title: str, name: str) -> Figure:
    """Counts with rows the true class and columns the predicted one, shaded by row share."""
    size = max(3.6, 0.55 * len(classes) + 2)
    figure, axes = _new_figure(size, size)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center", fontsize=7,
                  color="white" if share[row, column] > 0.6 else "black")
    labels = [c.replace("_", " ") for c in classes]
    axes.set_xticks(range(len(classes)), labels, rotation=45, ha="right", fontsize=7)
    axes.set_yticks(range(len(classes)), labels, fontsize=7)
    axes.set(xlabel="predicted", ylabel="true", title=title)
    return Figure(name, title, _png(figure))


def reliability_figure(probs: np.ndarray, labels: np.ndarray, title: str, name: str) -> Figure | None:
    """Accuracy against confidence per bin, with the bin counts; None when probs are not probabilities."""
    try:
        bins = reliability(probs, labels, n_bins=10)
    except InputError:
        return None
    figure, axes = _new_figure()
    centres = (bins.edges[:-1] + bins.edges[1:]) / 2
    filled = bins.count > 0
    axes.bar(centres[filled], bins.accuracy[filled], width=0.09, color="#4c72b0", label="accuracy")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for x, y, n in zip(centres[filled], bins.accuracy[filled], bins.count[filled]):
        axes.text(x, y + 0.02, str(n), ha="center", fontsize=6)
    axes.set(xlabel="confidence (top class)", ylabel="accuracy", title=f"{title}\nECE {bins.ece:.3f}",
             xlim=(0, 1), ylim=(0, 1.1))
    axes.legend(loc="upper left", fontsize=7)
    return Figure(name, title, _png(figure))


def strata_figure(series: Mapping[str, Sequence[Mapping[str, Any]]], metric: str, field_name: str, title: str,
                  name: str) -> Figure | None:
    """Grouped bars per stratum (one bar per model) with their bootstrap intervals as error bars."""
    strata = sorted({row["stratum"] for rows in series.values() for row in rows if row.get("estimate") is not None})
    if not strata or strata == [UNKNOWN]:  # nothing to compare: the field is missing for every case
        return None
    figure, axes = _new_figure(max(4.6, 1.1 * len(strata) + 2.5), 3.6)
    width = 0.8 / max(1, len(series))
    for index, (model, rows) in enumerate(series.items()):
        by_stratum = {row["stratum"]: row for row in rows}
        xs, ys, lows, highs = [], [], [], []
        for position, stratum in enumerate(strata):
            row = by_stratum.get(stratum)
            if row is None or row.get("estimate") is None:
                continue
            xs.append(position + (index - (len(series) - 1) / 2) * width)
            ys.append(row["estimate"])
            lows.append(row["estimate"] - (row["low"] if row.get("low") is not None else row["estimate"]))
            highs.append((row["high"] if row.get("high") is not None else row["estimate"]) - row["estimate"])
        axes.bar(xs, ys, width=width, yerr=[np.maximum(lows, 0), np.maximum(highs, 0)], capsize=3, label=model)
    counts = {row["stratum"]: row["n"] for rows in series.values() for row in rows}
    axes.set_xticks(range(len(strata)), [f"{s}\n(n={counts.get(s, 0)})" for s in strata], fontsize=7)
    axes.set(ylabel=metric.replace("_", " "), title=title, ylim=(0, 1.25))
    axes.legend(fontsize=7, loc="upper center", ncol=max(1, len(series)))
    return Figure(name, title, _png(figure))


def _groups(results: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Results grouped by (task, dataset), in run order."""
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in results:
        grouped.setdefault((record["task"], record["dataset"]), []).append(record)
    return grouped


def build_section(run: Path, task: str, dataset: str, records: Sequence[Mapping[str, Any]]) -> Section:
    """The comparison table and plots of one task on one dataset."""
    kind = records[0]["type"]
    columns = list(dict.fromkeys(name for record in records for name in record.get("metrics", {})))
    rows = [{"model": record["model"], "n": record.get("n"),
             "values": [format_ci(record.get("metrics", {}).get(name)) for name in columns]} for record in records]
    section = Section(task, kind, dataset, columns, rows)
    if kind in CLASS_TYPES:
        _class_figures(run, section, records)
    if kind == "binary":
        _binary_figures(run, section, records)
    _strata_figures(section, records)
    _extra_tables(section, records)
    return section


def _class_figures(run: Path, section: Section, records: Sequence[Mapping[str, Any]]) -> None:
    for record in records:
        predictions = _evaluated(run, record).labelled()
        if not len(predictions):
            continue
        probs, labels, model = predictions.probs(), predictions.labels(), record["model"]
        section.figures.append(confusion_figure(
            confusion_matrix(probs, labels), predictions.classes, f"{model}: confusion ({section.dataset})",
            _slug(section.task, section.dataset, model, "confusion")))
        figure = reliability_figure(probs, labels, f"{model}: reliability ({section.dataset})",
                                    _slug(section.task, section.dataset, model, "reliability"))
        if figure is not None:
            section.figures.append(figure)


def _binary_figures(run: Path, section: Section, records: Sequence[Mapping[str, Any]]) -> None:
    curves = []
    for record in records:
        predictions = _evaluated(run, record).labelled()
        try:
            fpr, tpr, _ = roc_curve(predictions.probs()[:, 1], predictions.labels() == 1)
        except UndefinedMetricError:
            section.notes.append(f"{record['model']}: no ROC curve (one class only in the evaluated rows)")
            continue
        auc = format_ci(record.get("metrics", {}).get("auroc"))
        curves.append((record["model"], fpr, tpr, f"{record['model']} (AUROC {auc})"))
        threshold = record.get("threshold") or {}
        if threshold.get("value") is not None:
            section.notes.append(f"{record['model']}: threshold {threshold['value']:.4g} chosen on {threshold['chosen_on']} "
                                 f"({threshold['rule']}, n={threshold['n_val']})")
    if curves:
        positive = (records[0].get("threshold") or {}).get("positive", "positive")
        section.figures.insert(0, roc_figure(curves, f"ROC: {positive} vs rest ({section.dataset})",
                                             _slug(section.task, section.dataset, "roc")))


def _strata_figures(section: Section, records: Sequence[Mapping[str, Any]]) -> None:
    fields = list(dict.fromkeys(f for record in records for f in record.get("strata", {})))
    for field_name in fields:
        metrics = list(dict.fromkeys(m for record in records for m in record["strata"].get(field_name, {})))
        for metric in metrics:
            series = {record["model"]: record["strata"][field_name][metric]["rows"] for record in records
                      if metric in record.get("strata", {}).get(field_name, {})}
            figure = strata_figure(series, metric, field_name, f"{metric.replace('_', ' ')} by {field_name} "
                                   f"({section.dataset})", _slug(section.task, section.dataset, field_name, metric))
            if figure is not None:
                section.figures.append(figure)
            groups = list(dict.fromkeys(row["stratum"] for rows in series.values() for row in rows))
            section.extra_tables.append({
                "title": f"{metric.replace('_', ' ')} by {field_name}: per group, its size (* too small or "
                         "undefined, not in the gap)", "columns": groups,
                "rows": [{"model": model, "values": [_group_cell(rows, group) for group in groups]}
                         for model, rows in series.items()],
            })
            for record in records:
                gap = (record["strata"].get(field_name, {}).get(metric) or {}).get("gap") or {}
                if gap.get("estimate") is not None:
                    section.notes.append(f"{record['model']}: {metric} gap by {field_name} {format_ci(gap)} "
                                         f"(best {gap['best']}, worst {gap['worst']})")


def _group_cell(rows: Sequence[Mapping[str, Any]], group: str) -> str:
    """``0.812 [0.781, 0.843] (n=40)``; ``*`` marks a group too small or undefined to enter the gap."""
    row = next((r for r in rows if r["stratum"] == group), None)
    if row is None:
        return "–"
    return f"{format_ci(row)} (n={row['n']}){'' if row['eligible'] else ' *'}"


def _extra_tables(section: Section, records: Sequence[Mapping[str, Any]]) -> None:
    """Ontology levels, probe regimes (mean ± sd over seeds) and text-to-image retrieval."""
    levels = list(dict.fromkeys(level for record in records for level in record.get("hierarchy", {})))
    for level in levels:
        names = list(dict.fromkeys(n for r in records for n in r["hierarchy"].get(level, {}).get("metrics", {})))
        if names:
            section.extra_tables.append({
                "title": f"at ontology level {level}", "columns": names,
                "rows": [{"model": r["model"], "values": [format_ci(r["hierarchy"][level].get("metrics", {}).get(n))
                                                          for n in names]} for r in records if level in r["hierarchy"]],
            })
    probes = [r for r in records if "regimes" in r.get("details", {})]
    if probes:
        regimes = list(dict.fromkeys(reg for r in probes for reg in r["details"]["regimes"]))
        section.extra_tables.append({
            "title": "linear probe by training regime: test balanced accuracy, mean ± sd over seeds",
            "columns": regimes,
            "rows": [{"model": r["model"], "values": [_mean_sd(r["details"]["regimes"].get(reg)) for reg in regimes]}
                     for r in probes],
        })
    retrievals = [r for r in records if "text_to_image" in r.get("details", {})]
    if retrievals:
        names = list(retrievals[0]["details"]["text_to_image"])
        section.extra_tables.append({
            "title": "text → image retrieval (no interval: text queries have no patient)", "columns": names,
            "rows": [{"model": r["model"], "values": [f"{r['details']['text_to_image'][n]:.3f}" for n in names]}
                     for r in retrievals],
        })


def _mean_sd(regime: Mapping[str, Any] | None) -> str:
    if not regime:
        return "–"
    value = regime["balanced_accuracy"]
    if len(regime.get("runs", [])) == 1:  # one deterministic fit (the full regime): no spread to show
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} ± {value['sd']:.3f}"


def build_context(run: str | Path) -> dict[str, Any]:
    """Everything the templates show, read from the run directory."""
    run = Path(run)
    path = run / RESULTS_FILE
    if not path.is_file():
        raise InputError(f"no {RESULTS_FILE}: not a suite run directory (dermkit eval SUITE.yaml --out RUN)", file=run)
    document = json.loads(path.read_text(encoding="utf-8"))
    sections = [build_section(run, task, dataset, records)
                for (task, dataset), records in _groups(document["results"]).items()]
    return {"document": document, "sections": sections, "run": str(run)}


def _template(name: str) -> Any:
    import jinja2

    text = resources.files("dermkit.evaluate").joinpath("templates").joinpath(name).read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=name.endswith(".html.j2"), trim_blocks=True, lstrip_blocks=True,
                                     undefined=jinja2.StrictUndefined)
    return environment.from_string(text)


def write_report(run: str | Path, html_out: str | Path, markdown_out: str | Path | None = None) -> tuple[Path, Path]:
    """Write the HTML report and its Markdown version (its PNGs in ``<markdown name>_files/`` beside it)."""
    html_out = Path(html_out)
    markdown_out = Path(markdown_out) if markdown_out is not None else html_out.with_suffix(".md")
    context = build_context(run)
    figures_dir = markdown_out.parent / f"{markdown_out.stem}_files"
    with atomic_dir(figures_dir) as tmp:  # replaced whole, so no plot of an earlier report lingers
        for section in context["sections"]:
            for figure in section.figures:
                (tmp / f"{figure.name}.png").write_bytes(figure.png)
    atomic_write_text(html_out, _template("report.html.j2").render(**context))
    atomic_write_text(markdown_out, _template("report.md.j2").render(**context, figures_dir=figures_dir.name))
    return html_out, markdown_out
