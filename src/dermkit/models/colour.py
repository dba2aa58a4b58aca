"""Colour constancy: Shades of Gray (Finlayson and Trezzi 2004), as in the ISIC challenge winners.

Dermoscopes, cameras and clinics cast an image differently; dividing each channel by its Minkowski
p-norm mean (p = 6: between the grey world, p = 1, and max-RGB, p = inf) removes most of that cast,
so a model trained on one source sees another's lesions in the colours it learnt. Applied before
every other transform, at training and at evaluation (it is stored in the model's preprocessing
under ``PREPROCESS_KEY``, so eval, predict and serve apply it too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

PREPROCESS_KEY = "shades_of_gray"  # its value is the norm p
DEFAULT_POWER = 6.0


def shades_of_gray(image: Image, power: float = DEFAULT_POWER) -> Image:
    """``image`` (RGB) with its illuminant, the per-channel p-norm mean, scaled to neutral grey."""
    import numpy as np
    from PIL import Image as PILImage

    if power <= 0:
        raise ValueError(f"shades of gray needs a norm p > 0, got {power}")
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    illuminant = np.power(np.mean(np.power(pixels, power), axis=(0, 1)), 1.0 / power)
    illuminant = illuminant / max(float(np.linalg.norm(illuminant)), 1e-12)
    gain = 1.0 / (np.maximum(illuminant, 1e-12) * np.sqrt(3.0))
    return PILImage.fromarray(np.clip(pixels * gain, 0, 255).astype(np.uint8))


class ShadesOfGray:
    """The transform form of :func:`shades_of_gray` (picklable, for data-loader workers)."""

    def __init__(self, power: float = DEFAULT_POWER) -> None:
        self.power = power

    def __call__(self, image: Image) -> Image:
        return shades_of_gray(image, self.power)
