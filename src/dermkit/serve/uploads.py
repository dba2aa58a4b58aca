"""Turning uploaded bytes into clean RGB images: the image gate's limits, EXIF stripped, optional storage.

An uploaded photo can carry the patient's location (EXIF GPS) and camera details. The service
decodes it, applies the EXIF orientation, and keeps only the pixels; the original bytes are
never written anywhere, and the pixels only when ``--store-uploads`` names a folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from dermkit.core.atomic import atomic_path
from dermkit.core.errors import InputError
from dermkit.data.images import UPLOAD_FORMATS, ImageLimits, OverBudget, PixelBudget, UnsupportedFormat, open_image
from dermkit.serve.config import ServeConfig
from dermkit.serve.errors import ApiError


def check_size(size: int | None, field: str, limit: int) -> None:
    """Refuse an upload over ``limit`` bytes (413) before reading it."""
    if size is not None and size > limit:
        raise ApiError(413, "image_too_large", f"upload is {size} bytes, over the limit of {limit}", field)


def upload_limits(config: ServeConfig) -> ImageLimits:
    """The gate's limits for this service: JPEG, PNG and WebP only, the configured sides and pixels."""
    return ImageLimits(formats=UPLOAD_FORMATS, min_side=config.min_side, max_side=config.max_side,
                       max_pixels=config.max_pixels)


def decode_upload(data: bytes, field: str, config: ServeConfig, budget: PixelBudget | None = None) -> Image.Image:
    """Bytes → upright RGB image (JPEGs decoded near the model's size) without any metadata.

    Refusals are :class:`ApiError` naming ``field``: 415 for a format other than JPEG, PNG or
    WebP, 413 over the request's pixel budget, 422 for the rest (not an image, truncated, a
    decompression bomb, sides out of range).
    """
    check_size(len(data), field, config.max_image_bytes)
    if not data:
        raise ApiError(422, "invalid_image", "the upload is empty", field)
    try:
        image = open_image(data, name=field, limits=upload_limits(config), fit=config.decode_side, budget=budget)
    except UnsupportedFormat as error:
        raise ApiError(415, "unsupported_format", error.message, field) from error
    except OverBudget as error:
        raise ApiError(413, "pixel_budget", error.message, field) from error
    except InputError as error:  # not an image, truncated, corrupt, a bomb, or a side out of range
        raise ApiError(422, "invalid_image", error.message, field) from error
    return strip_metadata(ImageOps.exif_transpose(image))


def strip_metadata(image: Image.Image) -> Image.Image:
    """A new image holding only the pixels: no EXIF, GPS, ICC profile or text chunks."""
    return Image.fromarray(np.asarray(image.convert("RGB")))


def store_upload(image: Image.Image, folder: Path) -> Path:
    """Write the (already stripped) pixels as PNG under a content-hash name; return the path."""
    name = hashlib.sha256(image.tobytes()).hexdigest()[:24] + ".png"
    target = folder / name
    with atomic_path(target) as tmp:
        strip_metadata(image).save(tmp, format="PNG")
    return target
