"""A frozen image backbone as an image-only :class:`LoadedModel`, so suites probe it like any model.

A suite compares vision-language models with plain ImageNet backbones (``timm:ARCH``); a backbone
has no text tower, so it takes part only in image-only tasks (linear probe). Its ``encode_image``
returns the trunk's pooled features, and the module keeps the trunk as ``trunk`` so the feature
cache shares its entries with every model built on the same trunk.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from dermkit.core.errors import InputError

if TYPE_CHECKING:
    import torch

    from dermkit.models.backbones import Backbone
    from dermkit.models.loaded import LoadedModel


def image_only_model(backbone: Backbone, name: str, device: str = "cpu") -> LoadedModel:
    """``backbone`` frozen, in eval mode, behind ``encode_image``, called ``name``; its tokenizer refuses text."""
    from dermkit.models.loaded import LoadedModel
    from dermkit.models.transforms import eval_transform

    transform = eval_transform(backbone.preprocess)
    module = _encoder_class()(backbone.module).to(device).eval()
    module.requires_grad_(False)
    return LoadedModel(model=module, preprocess_train=transform, preprocess_eval=transform,
                       tokenizer=_no_text, name=name, embed_dim=backbone.dim)


def _no_text(texts: list[str]) -> Any:
    raise InputError("an image-only backbone has no text tower (zero-shot, concepts and retrieval need one)")


@cache
def _encoder_class() -> type[torch.nn.Module]:
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
