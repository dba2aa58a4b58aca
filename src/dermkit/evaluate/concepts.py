"""Concept identification with MONET scoring, against ground truth matched to concepts by name.

For each concept and each template pair of :data:`~dermkit.models.prompts.CONCEPT_TEMPLATES`,
an image is compared with the target prompt (the template filled with the concept's synonyms,
ensembled) and with the reference prompt (the same sentence without the concept); a two-way
softmax gives the probability of "with the concept", and the score averages it over templates.
The reference cancels what the sentence itself contributes, so scores of different concepts are
comparable. Quality is the per-concept AUROC of the scores against annotations.

Annotation columns are matched to the ontology's concept vocabulary by name or synonym, never by
position: a CSV whose columns come in another order gives the same result, and a column the
vocabulary does not know is an error that names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import expit

from dermkit.core.errors import InputError
from dermkit.data.table import read_table
from dermkit.metrics import UndefinedMetricError, auroc
from dermkit.models.embeddings import ImageFeatures
from dermkit.models.encoding import ImageMode, encode_prompt_sets, resolve_model, split_embeddings
from dermkit.models.loaded import logit_scale
from dermkit.models.prompts import concept_prompts
from dermkit.ontology import Ontology, default_ontology

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

# A concept counts as identified when its AUROC exceeds this (the MONET / DermLIP convention).
GOOD_AUROC = 0.7
_TRUE = {"1", "true", "yes", "y", "present", "1.0"}
_FALSE = {"0", "false", "no", "n", "absent", "0.0"}


def concept_scores(
    model: str | LoadedModel,
    embeddings: np.ndarray,
    concept_ids: Sequence[str],
    ontology: Ontology | None = None,
) -> np.ndarray:
    """N×K MONET scores in [0, 1] of unit image ``embeddings`` for each concept."""
    loaded = resolve_model(model)
    scale = logit_scale(loaded)
    scores = np.zeros((len(embeddings), len(concept_ids)))
    for column, concept_id in enumerate(concept_ids):
        pairs = concept_prompts(concept_id, ontology)
        targets = encode_prompt_sets(loaded, [target for target, _ in pairs])
        references = encode_prompt_sets(loaded, [[reference] for _, reference in pairs])
        # softmax over (target, reference) = sigmoid of the scaled similarity difference
        margins = scale * embeddings @ (targets - references).T
        scores[:, column] = expit(margins).mean(axis=1)
    return scores


def concept_labels_from_columns(
    annotations: pd.DataFrame, id_column: str = "case_id", ontology: Ontology | None = None
) -> pd.DataFrame:
    """Annotations (an id column and one 0/1 column per concept name) → bool frame by concept id.

    Columns are resolved by name or synonym through the concept vocabulary; the result is indexed
    by case id with columns in vocabulary order, whatever order the input had.
    """
    if id_column not in annotations.columns:
        raise InputError(f"annotations lack the id column {id_column!r}", field=id_column)
    concepts = (ontology or default_ontology()).concepts
    by_id: dict[str, pd.Series] = {}
    for column in annotations.columns.drop(id_column):
        node = concepts.find(str(column))
        if node is None:
            hint = concepts.suggest(str(column))
            raise InputError(
                "not a concept of the vocabulary" + (f" (did you mean: {', '.join(hint)}?)" if hint else ""),
                field=str(column),
            )
        if node.id in by_id:
            raise InputError(f"two columns name the concept {node.id!r}", field=str(column))
        by_id[node.id] = _as_bool(annotations[column], str(column))
    order = [node.id for node in concepts if node.id in by_id]
    frame = pd.DataFrame({concept_id: by_id[concept_id].to_numpy() for concept_id in order})
    frame.index = pd.Index(annotations[id_column].astype(str), name="case_id")
    return frame


def concept_labels_from_table(cases: pd.DataFrame, concept_ids: Sequence[str]) -> pd.DataFrame:
    """Presence of each concept from the case table's ``concepts`` lists (unannotated cases dropped)."""
    annotated = cases[cases["concepts"].map(lambda value: value is not None)]
    present = {cid: annotated["concepts"].map(lambda ids, cid=cid: cid in set(ids)).to_numpy() for cid in concept_ids}
    return pd.DataFrame(present, index=pd.Index(annotated["case_id"], name="case_id"))


def concept_metrics(scores: np.ndarray, labels: pd.DataFrame) -> dict[str, Any]:
    """Per-concept AUROC (concepts with one class only are listed as skipped), mean and count > 0.7."""
    per_concept: dict[str, float] = {}
    skipped = []
    for column, concept_id in enumerate(labels.columns):
        try:
            per_concept[concept_id] = auroc(scores[:, column], labels[concept_id].to_numpy())
        except UndefinedMetricError:
            skipped.append(concept_id)
    values = list(per_concept.values())
    return {
        "per_concept_auroc": per_concept,
        "mean_auroc": float(np.mean(values)) if values else float("nan"),
        f"n_above_{GOOD_AUROC}": sum(value > GOOD_AUROC for value in values),
        "n_concepts": len(values),
        "skipped": skipped,
        "n": len(labels),
    }


def mean_concept_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean AUROC over the concepts (columns) on which it is defined: the task's headline figure."""
    values = []
    for column in range(scores.shape[1]):
        try:
            values.append(auroc(scores[:, column], labels[:, column]))
        except UndefinedMetricError:
            continue
    if not values:
        raise UndefinedMetricError("no concept has both present and absent cases")
    return float(np.mean(values))


def concept_report(
    model: str | LoadedModel,
    table: str | Path | pd.DataFrame,
    annotations: str | Path | pd.DataFrame | None = None,
    *,
    split: str | None = None,
    id_column: str = "case_id",
    images: ImageMode = "first",
    features: ImageFeatures | None = None,
    cache_dir: str | Path | None = None,
    ontology: Ontology | None = None,
    progress: bool = True,
    **scoring: Any,
) -> dict[str, Any]:
    """Concept AUROCs of ``model`` on ``table``; ground truth from ``annotations`` (CSV/frame) or the table.

    The mean AUROC is scored by the metric collection (``scoring``: its bootstrap and strata
    keywords), so it carries a case-resampled interval and the per-group block.
    """
    from dermkit.evaluate.metrics.collection import score_rows

    loaded = resolve_model(model)
    frame = table if isinstance(table, pd.DataFrame) else read_table(table)
    cases, embeddings = split_embeddings(
        loaded, frame, split, images=images, features=features, cache_dir=cache_dir, progress=progress
    )
    if annotations is None:
        vocabulary = ontology or default_ontology()
        labels = concept_labels_from_table(cases, [node.id for node in vocabulary.concepts if node.level > 1])
    else:
        raw = annotations if isinstance(annotations, pd.DataFrame) else pd.read_csv(annotations)
        labels = concept_labels_from_columns(raw, id_column, ontology)
    position = pd.Index(cases["case_id"]).get_indexer(labels.index)
    labels = labels[position >= 0]
    if labels.empty:
        raise InputError("no annotated case of the table is in the evaluated split")
    rows = position[position >= 0]
    scores = concept_scores(loaded, embeddings[rows], list(labels.columns), ontology)
    scored = score_rows({"mean_auroc": mean_concept_auroc}, scores, labels.to_numpy(dtype=bool),
                        cases.iloc[rows].reset_index(drop=True), **scoring)
    return {"model": loaded.name, "split": split, **concept_metrics(scores, labels), **scored}


def _as_bool(values: pd.Series, column: str) -> pd.Series:
    """0/1, booleans or yes/no words → bool; anything else (including blanks) is an error."""
    words = values.map(lambda value: str(value).strip().lower())
    unknown = ~words.isin(_TRUE | _FALSE)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0]) + 1
        raise InputError(f"expected 0/1 or yes/no, got {values.iloc[row - 1]!r}", row=row, field=column)
    return words.isin(_TRUE)
