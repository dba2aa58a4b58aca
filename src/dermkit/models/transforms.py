"""Image transforms: open_clip's own evaluation transform, and DermLIP-style training augmentation.

Evaluation must match stock open_clip exactly (an export loaded by open_clip gives the same
embeddings); training uses the stronger augmentation DermLIP trained with, because skin images
have no canonical orientation and vary widely in framing, lighting and colour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

CROP_SCALE = (0.4, 1.0)
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
JITTER_PROB = 0.8
GRAYSCALE_PROB = 0.2


def eval_transform(preprocess_cfg: Mapping[str, Any]) -> Callable[[Image], torch.Tensor]:
    """open_clip's inference transform for this preprocess config (resize, centre crop, normalise)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**preprocess_cfg), is_train=False)


def train_transform(preprocess_cfg: Mapping[str, Any]) -> Callable[[Image], torch.Tensor]:
    """Random resized crop (scale 0.4–1), flips, colour jitter and random grayscale, then normalise."""
    from torchvision import transforms as T

    cfg = dict(preprocess_cfg)
    size = cfg["size"]
    interpolation = T.InterpolationMode(cfg.get("interpolation", "bicubic"))
    return T.Compose([
        T.Lambda(_to_rgb),
        T.RandomResizedCrop(size, scale=CROP_SCALE, interpolation=interpolation),
        T.RandomHorizontalFlip(),
        T.RandomVerticalFlip(),
        T.RandomApply([T.ColorJitter(*JITTER)], p=JITTER_PROB),
        T.RandomGrayscale(p=GRAYSCALE_PROB),
        T.ToTensor(),
        T.Normalize(mean=cfg["mean"], std=cfg["std"]),
    ])


def _to_rgb(image: Image) -> Image:
    return image.convert("RGB")
