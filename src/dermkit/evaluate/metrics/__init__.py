"""Metrics, each written once (one module per family) and tested against scikit-learn and ISIC.

Functional metrics take numpy arrays ``(probs, target)``; :class:`Metric` wraps any of them with
``update``/``compute``/``reset`` for batched and distributed evaluation.
"""

from dermkit.evaluate.metrics.binary import (
    auroc,
    average_precision,
    choose_threshold,
    partial_auc_above_tpr,
    rates_at_threshold,
    roc_curve,
    sensitivity_at_specificity,
)
from dermkit.evaluate.metrics.calibration import Reliability, expected_calibration_error, reliability
from dermkit.evaluate.metrics.classification import (
    ClassRates,
    accuracy,
    balanced_accuracy,
    class_rates,
    cohen_kappa,
    confusion_matrix,
    macro_f1,
    top_k_accuracy,
)
from dermkit.evaluate.metrics.differential import (
    average_overlap,
    average_top_k_sensitivity,
    differential_top_k_accuracy,
)
from dermkit.evaluate.metrics.inputs import UNDECIDED, UndefinedMetricError, predicted_labels
from dermkit.evaluate.metrics.ranking import (
    PerClass,
    auroc_per_class,
    average_precision_per_class,
    macro_auroc,
    macro_average_precision,
    partial_auc_per_class,
)
from dermkit.evaluate.metrics.stateful import Metric

__all__ = [
    "UNDECIDED",
    "ClassRates",
    "Metric",
    "PerClass",
    "Reliability",
    "UndefinedMetricError",
    "accuracy",
    "auroc",
    "auroc_per_class",
    "average_overlap",
    "average_precision",
    "average_precision_per_class",
    "average_top_k_sensitivity",
    "balanced_accuracy",
    "choose_threshold",
    "class_rates",
    "cohen_kappa",
    "confusion_matrix",
    "differential_top_k_accuracy",
    "expected_calibration_error",
    "macro_auroc",
    "macro_average_precision",
    "macro_f1",
    "partial_auc_above_tpr",
    "partial_auc_per_class",
    "predicted_labels",
    "rates_at_threshold",
    "reliability",
    "roc_curve",
    "sensitivity_at_specificity",
    "top_k_accuracy",
]
