"""Evaluation: metrics written once, bootstrap intervals, strata, and the predictions table.

Every evaluation task writes a predictions table (:mod:`dermkit.evaluate.predictions`); the
metrics, strata and reports read it, so nothing has to re-run a model to redo a cheap step.
A suite (:mod:`dermkit.evaluate.suite`) names datasets, models and tasks in one YAML file;
:func:`run_suite` runs it into a run directory and :func:`write_report` turns that into HTML
and Markdown.
"""

from dermkit.evaluate.concepts import concept_report
from dermkit.evaluate.features import (
    ImageFeatures,
    encode_prompt_sets,
    encode_texts,
    extract_image_features,
)
from dermkit.evaluate.hierarchy import at_level
from dermkit.evaluate.linear_probe import linear_probe_report
from dermkit.evaluate.report import write_report
from dermkit.evaluate.retrieval import retrieval_metrics, retrieval_report
from dermkit.evaluate.runner import run_suite
from dermkit.evaluate.suite import Suite, SuiteError, load_suite
from dermkit.evaluate.zeroshot import (
    zero_shot_predictions,
    zero_shot_report,
)

__all__ = [
    "ImageFeatures",
    "Suite",
    "SuiteError",
    "at_level",
    "concept_report",
    "encode_prompt_sets",
    "encode_texts",
    "extract_image_features",
    "linear_probe_report",
    "load_suite",
    "retrieval_metrics",
    "retrieval_report",
    "run_suite",
    "write_report",
    "zero_shot_predictions",
    "zero_shot_report",
]
