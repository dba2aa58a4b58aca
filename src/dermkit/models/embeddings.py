"""Unit-norm embeddings and their cosine geometry: the table type every task reads and the cache stores.

Every model-running task (zero-shot, concepts, linear probe, retrieval, the similar-case index)
works in cosine geometry, so embeddings are kept L2-normalised and pooled as renormalised means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dermkit.core.errors import InputError


@dataclass(frozen=True)
class ImageFeatures:
    """Unit-norm embeddings, one row per embedded image, with the case each image belongs to."""

    case_ids: np.ndarray
    image_index: np.ndarray
    embeddings: np.ndarray
    meta: dict[str, Any]

    def by_case(self, case_ids: Sequence[str] | None = None) -> np.ndarray:
        """One unit vector per case, in the order of ``case_ids`` (default: table order).

        A case with several images gets the renormalised mean of its images' embeddings.
        """
        codes, uniques = pd.factorize(pd.Series(self.case_ids))
        pooled = mean_direction(self.embeddings, codes, len(uniques))
        if case_ids is None:
            return pooled
        position = pd.Index(uniques).get_indexer(list(case_ids))
        missing = [c for c, p in zip(case_ids, position) if p < 0]
        if missing:
            raise InputError(f"no features for cases {missing[:5]} (extracted from another table?)")
        return pooled[position]


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def mean_direction(embeddings: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, the renormalised mean of its rows' unit vectors (``groups[i]`` in ``[0, n_groups)``)."""
    sums = np.zeros((n_groups, embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, groups, l2_normalize(embeddings.astype(np.float64)))
    return l2_normalize(sums).astype(np.float32)
