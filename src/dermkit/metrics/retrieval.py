"""Image–text retrieval metrics: recall at k and first-hit ranks, with many-to-many ground truth.

An image may have several captions and one caption may describe several images (captions built
from structured fields repeat across cases with the same findings). Ground truth is therefore a
boolean relevance matrix, not a one-to-one index: a query scores a hit at k when *any* relevant
partner is among its k best, and its rank is that of its best-ranked relevant partner. The usual
one-to-one shortcut (diagonal = correct) would count a retrieved identical caption of another
image as a miss. Pure numpy, so training's validation recall and evaluation's report share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from dermkit.core.errors import InputError

DEFAULT_KS = (1, 5, 10)


def relevance_matrix(pairs: Iterable[tuple[int, int]], n_images: int, n_texts: int) -> np.ndarray:
    """The n_images × n_texts boolean matrix of (image index, text index) pairs."""
    relevant = np.zeros((n_images, n_texts), dtype=bool)
    for image, text in pairs:
        relevant[image, text] = True
    return relevant


def first_hit_ranks(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Per query row, the 1-based rank of its best-ranked relevant item.

    Ties are broken against the query: an irrelevant item scoring the same as the best relevant
    one ranks above it, so a model that scores everything equally gets the worst rank, not the best.
    """
    scores = np.asarray(similarity, dtype=np.float64)
    truth = np.asarray(relevant, dtype=bool)
    if scores.shape != truth.shape or scores.ndim != 2:
        raise InputError(f"similarity {scores.shape} and relevance {truth.shape} must be equal-shape matrices")
    lonely = np.flatnonzero(~truth.any(axis=1))
    if lonely.size:
        raise InputError(f"{lonely.size} queries have no relevant item (first: row {lonely[0]})")
    best = np.where(truth, scores, -np.inf).max(axis=1, keepdims=True)
    return 1 + np.sum((scores >= best) & ~truth, axis=1)


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Share of queries with a hit in the top k, for each k, plus mean and median first-hit rank."""
    out = {f"R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["mean_rank"] = float(np.mean(ranks))
    out["median_rank"] = float(np.median(ranks))
    return out


def recall_metric_fns(ks: Sequence[int] = DEFAULT_KS) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """Image-to-text recall at each k as a ``metric(ranks, _)`` of the first-hit ranks, for the metric
    collection's bootstrap and per-group block (text queries have no patient, so no interval)."""
    return {f"image_to_text_R@{k}": _recall_within(k) for k in ks}


def _recall_within(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """The share of first-hit ranks ≤ ``k``, as a ``metric(ranks, _)``."""
    return lambda ranks, _: float(np.mean(ranks <= k))


def retrieval_metrics(
    similarity: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, dict[str, float]]:
    """Image→text (rows are images) and text→image recall at k and ranks."""
    return {
        "image_to_text": recall_at_k(first_hit_ranks(similarity, relevant), ks),
        "text_to_image": recall_at_k(first_hit_ranks(np.transpose(similarity), np.transpose(relevant)), ks),
    }
