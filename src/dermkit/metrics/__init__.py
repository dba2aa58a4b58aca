"""Metrics, each written once (one module per family) and tested against scikit-learn and ISIC.

They import only ``core`` and sit below ``train`` and ``evaluate``, so both score with the same
code. Functional metrics take numpy arrays ``(probs, target)``; :class:`Metric` wraps any of them with
``update``/``compute``/``reset`` for batched and distributed evaluation.
"""

from dermkit.metrics.binary import (
    auroc,
    average_precision,
    choose_threshold,
    partial_auc_above_tpr,
    rates_at_threshold,
    roc_curve,
    sensitivity_at_specificity,
)
from dermkit.metrics.calibration import (
    Reliability,
    expected_calibration_error,
    reliability,
)
from dermkit.metrics.classification import (
    ClassRates,
    accuracy,
    balanced_accuracy,
    class_rates,
    cohen_kappa,
    confusion_matrix,
    macro_f1,
    top_k_accuracy,
)
from dermkit.metrics.differential import (
    average_overlap,
    average_top_k_sensitivity,
    differential_top_k_accuracy,
)
from dermkit.metrics.inputs import UNDECIDED, UndefinedMetricError, predicted_labels
from dermkit.metrics.ranking import (
    PerClass,
    auroc_per_class,
    average_precision_per_class,
    macro_auroc,
    macro_average_precision,
    partial_auc_per_class,
)
from dermkit.metrics.stateful import Metric

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
