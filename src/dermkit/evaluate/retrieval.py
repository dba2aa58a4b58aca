"""Image–text retrieval of a model on a case table against its captions (metrics in
:mod:`dermkit.metrics.retrieval`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dermkit.data.table import Case
from dermkit.metrics.retrieval import (
    DEFAULT_KS,
    first_hit_ranks,
    recall_metric_fns,
    relevance_matrix,
    retrieval_metrics,
)
from dermkit.models.embeddings import ImageFeatures
from dermkit.models.encoding import ImageMode, encode_texts, resolve_model, split_embeddings

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

def case_captions(
    cases: pd.DataFrame, captions_per_case: int = 3, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """Distinct captions of ``cases`` (their own, else built from fields) and the case × text relevance."""
    from dermkit.data.captions import captions_for_case

    texts: dict[str, int] = {}
    pairs = []
    for row, record in enumerate(cases.to_dict(orient="records")):
        for caption in captions_for_case(Case.from_row(record), n=captions_per_case, seed=seed):
            pairs.append((row, texts.setdefault(caption, len(texts))))
    return list(texts), relevance_matrix(pairs, len(cases), len(texts))


def retrieval_report(
    model_name: str | LoadedModel,
    table_dir: str | Path | pd.DataFrame,
    split: str | None = "test",
    captions_per_case: int = 3,
    *,
    seed: int = 0,
    ks: Sequence[int] = DEFAULT_KS,
    images: ImageMode = "first",
    features: ImageFeatures | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    **scoring: Any,
) -> dict[str, Any]:
    """Image↔text retrieval of the cases of ``split`` against their captions (see :func:`case_captions`).

    Image-to-text recall at k is also scored by the metric collection (``scoring``: its bootstrap
    and strata keywords): intervals and the per-group block under ``metrics`` and ``strata``.
    """
    from dermkit.evaluate.metrics.collection import score_rows

    loaded = resolve_model(model_name)
    cases, embeddings = split_embeddings(
        loaded, table_dir, split, images=images, features=features, cache_dir=cache_dir, progress=progress
    )
    texts, relevant = case_captions(cases, captions_per_case, seed)
    similarity = embeddings @ encode_texts(loaded, texts).T
    ranks = first_hit_ranks(similarity, relevant)
    return {
        "model": loaded.name,
        "split": split,
        "n_images": len(cases),
        "n_texts": len(texts),
        "captions_per_image": float(relevant.sum(axis=1).mean()),
        "images_per_caption": float(relevant.sum(axis=0).mean()),
        **retrieval_metrics(similarity, relevant, ks),
        **score_rows(recall_metric_fns(ks), ranks, np.zeros(len(ranks)), cases.reset_index(drop=True), **scoring),
    }
