"""Image-only feature sources for linear probing: frozen timm backbones and precomputed embeddings.

A suite compares vision-language models with plain ImageNet backbones and with embeddings made
elsewhere; neither has a text tower, so they take part only in image-only tasks (linear probe).
``timm:ARCH`` wraps a timm model without its classifier as a :class:`LoadedModel` whose
``encode_image`` returns the pooled features, so the cached extraction of
:mod:`dermkit.evaluate.features` runs on it unchanged. ``embeddings:PATH.npy`` reads N×D rows
plus the sibling ``PATH.parquet`` naming each row's ``case_id``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dermkit.core.errors import InputError
from dermkit.evaluate.features import ImageFeatures
from dermkit.models.names import model_name


def embeddings_index_path(path: Path) -> Path:
    """The Parquet file naming the case of every row of an embeddings ``.npy``."""
    return path.with_suffix(".parquet")


def check_embeddings_path(path: Path) -> None:
    """Refuse an embeddings file that is missing, not ``.npy``, or has no case-id index."""
    if path.suffix != ".npy" or not path.is_file():
        raise InputError("embeddings must be an existing .npy file", file=path)
    if not embeddings_index_path(path).is_file():
        raise InputError(f"no case-id index {embeddings_index_path(path).name} beside it", file=path)


def read_embeddings(path: str | Path) -> ImageFeatures:
    """Precomputed embeddings as :class:`ImageFeatures` (several rows of one case are pooled later)."""
    from dermkit.evaluate.features import l2_normalize

    path = Path(path)
    check_embeddings_path(path)
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
        meta={"model": model_name("embeddings", str(path)).text, "n_images": len(matrix), "embed_dim": int(matrix.shape[1])},
    )
