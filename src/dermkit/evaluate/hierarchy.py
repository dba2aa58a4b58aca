"""A classifier's predictions seen at a coarser level of the condition ontology.

A melanoma called a nevus is wrong as a diagnosis but right as "melanocytic neoplasm"; reporting
every metric at each ontology level shows whether a model's mistakes stay inside a family. Classes
and labels are mapped to their ancestor at the level (``Hierarchy.at_level``: a class above the
level stays itself), and the probabilities of classes that share an ancestor are summed, so the
result is again a predictions table that every metric, stratum and bootstrap accepts unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dermkit.core.errors import InputError
from dermkit.data.predictions import UNLABELLED, Predictions
from dermkit.ontology import Ontology, default_ontology


def level_classes(classes: tuple[str, ...] | list[str], level: int, ontology: Ontology | None = None) -> list[str]:
    """Each class's ancestor id at ``level``, in class order (with repeats)."""
    if level < 1:
        raise InputError(f"ontology levels start at 1, got {level}", field="hierarchy_levels")
    conditions = (ontology or default_ontology()).conditions
    return [conditions.at_level(class_id, level).id for class_id in classes]


def merge_matrix(ancestors: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct ancestors (first-seen order) and the C×G 0/1 matrix summing classes into them."""
    groups = list(dict.fromkeys(ancestors))
    matrix = np.zeros((len(ancestors), len(groups)))
    matrix[np.arange(len(ancestors)), [groups.index(a) for a in ancestors]] = 1.0
    return groups, matrix


def at_level(predictions: Predictions, level: int, ontology: Ontology | None = None) -> Predictions:
    """The same cases with classes merged at ontology ``level``: probabilities and soft targets summed."""
    groups, matrix = merge_matrix(level_classes(predictions.classes, level, ontology))
    labels = predictions.labels()
    mapped = np.full(labels.shape, UNLABELLED, dtype=np.int64)
    known = labels != UNLABELLED
    mapped[known] = np.argmax(matrix[labels[known]], axis=1)
    frame = predictions.frame.copy()
    frame["label"] = mapped.astype(np.int32)
    frame["probs"] = list(predictions.probs() @ matrix)
    frame["target"] = [None if t is None or (not hasattr(t, "__len__") and pd.isna(t))
                       else np.asarray(t, dtype=np.float64) @ matrix for t in frame["target"]]
    return Predictions(frame, predictions.model_id, tuple(groups))
