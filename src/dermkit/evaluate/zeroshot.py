"""Zero-shot classification: score a case table's images against ensembled class prompts.

Each case is scored with the prompts of its own acquisition type and source (see
:mod:`dermkit.models.prompts`); probabilities are the softmax of the model's logit scale times
cosine similarity. The result is a predictions table, so metrics, strata and bootstrap intervals
are computed from it later without re-running the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import softmax

from dermkit.core.errors import InputError
from dermkit.data.predictions import UNLABELLED, Predictions
from dermkit.data.table import read_table
from dermkit.models.embeddings import ImageFeatures
from dermkit.models.encoding import ImageMode, encode_prompt_sets, resolve_model, split_embeddings
from dermkit.models.loaded import logit_scale
from dermkit.models.prompts import class_prompts, templates_for
from dermkit.ontology import Ontology, default_ontology

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

def resolve_classes(
    classes: str | Sequence[str] | None, frame: pd.DataFrame, ontology: Ontology | None = None
) -> list[str]:
    """The class list: a label-set name, a list of condition ids, or (``None``) the table's own.

    ``None`` takes the label set named after the table's source when there is one, else the
    table's distinct diagnosis ids in sorted order.
    """
    ontology = ontology or default_ontology()
    if isinstance(classes, str):
        return ontology.label_set(classes)
    if classes is not None:
        return [ontology.conditions.get(term).id for term in classes]
    sources = frame["source"].dropna().unique()
    if len(sources) == 1 and sources[0] in ontology.label_sets:
        return ontology.label_set(sources[0])
    found = sorted(set(frame["diagnosis_id"].dropna()))
    if len(found) < 2:
        raise InputError("the table has fewer than two diagnoses; pass a label set or class list")
    return found


def class_labels(
    diagnosis_ids: Sequence[str | None], classes: Sequence[str], ontology: Ontology | None = None
) -> np.ndarray:
    """Index of each diagnosis in ``classes``, or of its nearest ancestor there; -1 if neither.

    So a table labelled ``superficial_spreading_melanoma`` scores against a ``melanoma`` class.
    """
    conditions = (ontology or default_ontology()).conditions
    position = {class_id: index for index, class_id in enumerate(classes)}
    labels = np.full(len(diagnosis_ids), UNLABELLED, dtype=np.int64)
    for row, diagnosis in enumerate(diagnosis_ids):
        if diagnosis is None or conditions.find(diagnosis) is None:
            continue
        for node in reversed(conditions.path(diagnosis)):
            if node.id in position:
                labels[row] = position[node.id]
                break
    return labels


def zero_shot_scores(
    model: str | LoadedModel,
    embeddings: np.ndarray,
    cases: pd.DataFrame,
    classes: Sequence[str],
    ontology: Ontology | None = None,
) -> np.ndarray:
    """N×C class probabilities of unit image ``embeddings`` (rows of ``cases``, same order)."""
    loaded = resolve_model(model)
    scale = logit_scale(loaded)
    probs = np.zeros((len(cases), len(classes)))
    settings = list(zip(cases["acquisition"], cases["source"]))
    for acquisition, source in dict.fromkeys(settings):
        rows = np.array([setting == (acquisition, source) for setting in settings])
        text = encode_prompt_sets(loaded, class_prompts(classes, templates_for(acquisition, source), ontology))
        probs[rows] = softmax(scale * embeddings[rows] @ text.T, axis=1)
    return probs


def zero_shot_predictions(
    model: str | LoadedModel,
    table: str | Path | pd.DataFrame,
    *,
    classes: str | Sequence[str] | None = None,
    split: str | None = "test",
    images: ImageMode = "first",
    features: ImageFeatures | None = None,
    cache_dir: str | Path | None = None,
    ontology: Ontology | None = None,
    progress: bool = True,
) -> Predictions:
    """Classify the cases of ``split`` (``None``: all) into ``classes``; a predictions table.

    Features come from ``features`` when given, else from the (cached) extraction of the table.
    """
    loaded = resolve_model(model)
    frame = table if isinstance(table, pd.DataFrame) else read_table(table)
    class_ids = resolve_classes(classes, frame, ontology)
    cases, embeddings = split_embeddings(
        loaded, frame, split, images=images, features=features, cache_dir=cache_dir, progress=progress
    )
    probs = zero_shot_scores(loaded, embeddings, cases, class_ids, ontology)
    labels = class_labels(cases["diagnosis_id"].tolist(), class_ids, ontology)
    return Predictions.from_cases(cases, probs, labels, model_id=loaded.name, classes=class_ids)


def zero_shot_report(
    model_name: str | LoadedModel,
    table_dir: str | Path,
    split: str | None = "test",
    label_set: str | Sequence[str] | None = None,
    *,
    images: ImageMode = "first",
    cache_dir: str | Path | None = None,
    **scoring: Any,
) -> dict[str, Any]:
    """Zero-shot predictions of ``split`` scored by the metric collection (``scoring``: its bootstrap and
    strata keywords): every metric with its interval, and the per-group block."""
    from dermkit.evaluate.metrics.collection import score_predictions

    predictions = zero_shot_predictions(model_name, table_dir, classes=label_set, split=split, images=images,
                                        cache_dir=cache_dir)
    return {"model": predictions.model_id, "split": split, **score_predictions(predictions, **scoring)}
