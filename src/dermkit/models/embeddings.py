"""Unit-norm embeddings and their cosine geometry: the table type every task reads and the cache stores.

Every model-running task (zero-shot, concepts, linear probe, retrieval, the similar-case index)
works in cosine geometry, so embeddings are kept L2-normalised and pooled as renormalised means.
Embeddings made elsewhere come in as ``embeddings:PATH.npy``: N×D rows plus the sibling
``PATH.parquet`` naming each row's ``case_id`` (and optionally ``image_index``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dermkit.core.errors import InputError
from dermkit.models.factory import Source, register_source
from dermkit.models.names import ModelName


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


def embeddings_index_path(path: Path) -> Path:
    """The Parquet file naming the case of every row of an embeddings ``.npy``."""
    return path.with_suffix(".parquet")


def check_embeddings_path(name: ModelName) -> None:
    """Refuse an embeddings file that is missing, not ``.npy``, or has no case-id index."""
    path = Path(name.reference)
    if path.suffix != ".npy" or not path.is_file():
        raise InputError("embeddings must be an existing .npy file", file=path)
    if not embeddings_index_path(path).is_file():
        raise InputError(f"no case-id index {embeddings_index_path(path).name} beside it", file=path)


def read_embeddings(name: ModelName) -> ImageFeatures:
    """Precomputed embeddings as :class:`ImageFeatures` (several rows of one case are pooled later)."""
    check_embeddings_path(name)
    path = Path(name.reference)
    matrix = np.load(path)
    index = pd.read_parquet(embeddings_index_path(path))
    if "case_id" not in index.columns or len(index) != len(matrix) or matrix.ndim != 2:
        raise InputError(f"needs a case_id column with one row per embedding ({len(matrix)})",
                         file=embeddings_index_path(path))
    image_index = index["image_index"].to_numpy() if "image_index" in index else np.zeros(len(index), dtype=int)
    return ImageFeatures(
        case_ids=index["case_id"].astype(str).to_numpy(dtype=object),
        image_index=image_index,
        embeddings=l2_normalize(matrix.astype(np.float32)),
        meta={"model": name.text, "n_images": len(matrix), "embed_dim": int(matrix.shape[1])},
    )


register_source("embeddings", Source("embeddings", embeddings=read_embeddings, check=check_embeddings_path))
