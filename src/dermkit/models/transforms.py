"""Image transforms: open_clip's own evaluation transform, and training augmentations.

Evaluation must match stock open_clip exactly (an export loaded by open_clip gives the same
embeddings). Image-text training uses the strong augmentation DermLIP trained with, because skin
images have no canonical orientation and vary widely in framing, lighting and colour. Classifier
fine-tuning chooses between that (``strong``, plus rotation) and ``light``: crops, flips and
quarter turns with a mild brightness/contrast change, keeping hue and saturation, which carry
diagnostic signal (a blue-white veil, regression's grey-blue) that hue jitter and grayscale erase.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dermkit.models.colour import PREPROCESS_KEY

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

CROP_SCALE = (0.4, 1.0)
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
JITTER_PROB = 0.8
GRAYSCALE_PROB = 0.2
ROTATION_DEGREES = 45  # strong: lesions have no canonical orientation; larger angles mostly add black corners
LIGHT_CROP_SCALE = (0.35, 1.0)
LIGHT_JITTER = (0.1, 0.1, 0.0, 0.0)  # brightness, contrast only: colour itself is diagnostic
LIGHT_JITTER_PROB = 0.5
AUGMENTATIONS = ("light", "strong")
# Test-time views, in the order taken: identity, mirror, half turn, its mirror, then the quarter
# turns and theirs; as (quarter turns, mirrored). 1, 2, 4 or 8 of them are averaged.
DIHEDRAL_VIEWS = ((0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True))
TTA_VIEW_COUNTS = (1, 2, 4, 8)


def eval_transform(preprocess_cfg: Mapping[str, Any]) -> Callable[[Image], torch.Tensor]:
    """open_clip's inference transform for this preprocess config (resize, centre crop, normalise)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = dict(preprocess_cfg)
    power = cfg.pop(PREPROCESS_KEY, None)
    return _colour_constant(image_transform_v2(PreprocessCfg(**cfg), is_train=False), power)


def train_transform(preprocess_cfg: Mapping[str, Any]) -> Callable[[Image], torch.Tensor]:
    """Random resized crop (scale 0.4–1), flips, colour jitter and random grayscale, then normalise."""
    from torchvision import transforms as T

    return _augmentation(preprocess_cfg, CROP_SCALE, [T.RandomApply([T.ColorJitter(*JITTER)], p=JITTER_PROB),
                                                      T.RandomGrayscale(p=GRAYSCALE_PROB)])


def classifier_train_transform(preprocess_cfg: Mapping[str, Any], augment: str = "light"
                               ) -> Callable[[Image], torch.Tensor]:
    """The fine-tuning augmentation ``augment`` (see the module docstring) for this preprocessing."""
    from torchvision import transforms as T

    power = preprocess_cfg.get(PREPROCESS_KEY)
    if augment == "strong":
        return _colour_constant(T.Compose([T.RandomRotation(ROTATION_DEGREES), train_transform(preprocess_cfg)]),
                                power)
    if augment != "light":
        raise ValueError(f"unknown augmentation {augment!r}; choose from {', '.join(AUGMENTATIONS)}")
    return _colour_constant(_augmentation(preprocess_cfg, LIGHT_CROP_SCALE, [
        RandomQuarterTurn(), T.RandomApply([T.ColorJitter(*LIGHT_JITTER)], p=LIGHT_JITTER_PROB)]), power)


def _colour_constant(transform: Callable[[Image], torch.Tensor], power: float | None
                     ) -> Callable[[Image], torch.Tensor]:
    """``transform`` after Shades of Gray colour constancy of norm ``power`` (none: unchanged)."""
    from torchvision import transforms as T

    from dermkit.models.colour import ShadesOfGray

    return transform if power is None else T.Compose([T.Lambda(_to_rgb), ShadesOfGray(power), transform])


def _augmentation(preprocess_cfg: Mapping[str, Any], crop_scale: tuple[float, float],
                  photometric: list[Callable[[Image], Image]]) -> Callable[[Image], torch.Tensor]:
    """RGB, random resized crop of ``crop_scale``, both flips, ``photometric``, then normalise."""
    from torchvision import transforms as T

    cfg = dict(preprocess_cfg)
    interpolation = T.InterpolationMode(cfg.get("interpolation", "bicubic"))
    return T.Compose([
        T.Lambda(_to_rgb),
        T.RandomResizedCrop(cfg["size"], scale=crop_scale, interpolation=interpolation),
        T.RandomHorizontalFlip(),
        T.RandomVerticalFlip(),
        *photometric,
        T.ToTensor(),
        T.Normalize(mean=cfg["mean"], std=cfg["std"]),
    ])


class RandomQuarterTurn:
    """Rotate by 0, 90, 180 or 270 degrees (torch's generator, like torchvision's transforms):
    every orientation, no black corners."""

    def __call__(self, image: Image) -> Image:
        import torch
        from PIL.Image import Transpose

        turns = (None, Transpose.ROTATE_90, Transpose.ROTATE_180, Transpose.ROTATE_270)
        turn = turns[int(torch.randint(len(turns), ()))]
        return image if turn is None else image.transpose(turn)


def dihedral_view(images: torch.Tensor, view: int) -> torch.Tensor:
    """View ``view`` of ``DIHEDRAL_VIEWS`` of a batch (…×H×W): a lesion has no up, down, left or
    right, so a classifier's prediction may be averaged over these symmetries of the square."""
    import torch

    turns, mirrored = DIHEDRAL_VIEWS[view]
    out = torch.rot90(images, turns, dims=(-2, -1))
    return out.flip(-1) if mirrored else out


def check_tta(views: int) -> int:
    """``views`` if it is a supported test-time view count, else an error naming ``tta``."""
    from dermkit.core.errors import InputError

    if views not in TTA_VIEW_COUNTS:
        raise InputError(f"--tta takes {', '.join(map(str, TTA_VIEW_COUNTS))} views, got {views!r}", field="tta")
    return views


def _to_rgb(image: Image) -> Image:
    return image.convert("RGB")
