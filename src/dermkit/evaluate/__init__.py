"""Evaluation: metrics written once, bootstrap intervals, strata, and the predictions table.

Every evaluation task writes a predictions table (:mod:`dermkit.data.predictions`); the
metrics, strata and reports read it, so nothing has to re-run a model to redo a cheap step.
Image and text embeddings come from :mod:`dermkit.models.encoding`.
A suite (:mod:`dermkit.evaluate.suite`) names datasets, models and tasks in one YAML file;
:func:`run_suite` runs it into a run directory and :func:`write_report` turns that into HTML
and Markdown.

The face is lazy (PEP 562): importing one module of this package (``dermkit.data.predictions``)
does not load the suite runner, YAML or model code; the names below are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dermkit.evaluate.concepts import concept_report
    from dermkit.evaluate.hierarchy import at_level
    from dermkit.evaluate.linear_probe import linear_probe_report
    from dermkit.evaluate.report import write_report
    from dermkit.evaluate.retrieval import retrieval_metrics, retrieval_report
    from dermkit.evaluate.runner import run_suite
    from dermkit.evaluate.suite import Suite, SuiteError, load_suite
    from dermkit.evaluate.zeroshot import zero_shot_predictions, zero_shot_report

_LAZY = {
    "Suite": "dermkit.evaluate.suite",
    "SuiteError": "dermkit.evaluate.suite",
    "at_level": "dermkit.evaluate.hierarchy",
    "concept_report": "dermkit.evaluate.concepts",
    "linear_probe_report": "dermkit.evaluate.linear_probe",
    "load_suite": "dermkit.evaluate.suite",
    "retrieval_metrics": "dermkit.evaluate.retrieval",
    "retrieval_report": "dermkit.evaluate.retrieval",
    "run_suite": "dermkit.evaluate.runner",
    "write_report": "dermkit.evaluate.report",
    "zero_shot_predictions": "dermkit.evaluate.zeroshot",
    "zero_shot_report": "dermkit.evaluate.zeroshot",
}

__all__ = [
    "Suite",
    "SuiteError",
    "at_level",
    "concept_report",
    "linear_probe_report",
    "load_suite",
    "retrieval_metrics",
    "retrieval_report",
    "run_suite",
    "write_report",
    "zero_shot_predictions",
    "zero_shot_report",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
