"""The one image gate: allowed formats, side and pixel limits, reduced decoding, per-request budgets.

Every image dermkit reads (importers, training, ``collect`` uploads, ``serve`` uploads) passes
:func:`open_image`. In order, before any pixel is decoded:

1. the format is read from the header, and only the plugins of the allowed formats are tried
   (``Image.open(..., formats=...)``), so no other decoder runs: an EPS never reaches
   Ghostscript, a TIFF never reaches libtiff. A refused format is named (:class:`UnsupportedFormat`);
2. the declared size is checked against the minimum and maximum side and the pixel limit; a
   header claiming more is refused as a decompression bomb (:class:`TooManyPixels`);
3. with ``fit``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose sides stay
   at least ``fit`` (``draft``), so a 7000² photo for a 224-pixel model costs 875² pixels;
4. a :class:`PixelBudget` shared by one request's images is charged the pixels to be decoded.

Then the image is decoded in full (catching truncation), reduced by an integer factor towards
``fit`` where the format has no reduced decoding, and converted to RGB.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from dermkit.core.errors import InputError

_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")

# What the servers accept from the public: the three formats browsers and phones produce.
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP")
# Image sets on disk may also ship BMP (PH2), TIFF (microscopy exports) or GIF (old atlas scrapes);
# still never EPS (Ghostscript), PDF or PSD.
DATASET_FORMATS = (*UPLOAD_FORMATS, "BMP", "TIFF", "GIF")
# 50 megapixels: far above any photo in these datasets, far below what exhausts memory.
MAX_PIXELS = 50_000_000
# WebP's own limit is 16383; a longer side is a strip, not a photo.
MAX_SIDE = 16_384
# Bytes of the header read to name a refused format (Pillow's plugins need at most 16).
_SNIFF_BYTES = 16


@dataclass(frozen=True)
class ImageLimits:
    """What one image may be: its formats (Pillow names), sides and pixels."""

    formats: tuple[str, ...] = DATASET_FORMATS
    min_side: int = 1
    max_side: int = MAX_SIDE
    max_pixels: int = MAX_PIXELS


class UnsupportedFormat(InputError):
    """The image is in a format that is not allowed here (the message names it)."""


class TooManyPixels(InputError):
    """Over a pixel limit, a side limit or a request's budget, or a decompression bomb."""


class OverBudget(TooManyPixels):
    """The image would take its request over the request's :class:`PixelBudget`."""


class PixelBudget:
    """Pixels one request may decode across all its images (after reduced decoding)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def charge(self, pixels: int, label: str) -> None:
        if self.spent + pixels > self.limit:
            raise OverBudget(
                f"decoding this image would bring the request to {self.spent + pixels} pixels, over its budget of "
                f"{self.limit}", file=label)
        self.spent += pixels


def open_image(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    limits: ImageLimits | None = None,
    fit: int | None = None,
    budget: PixelBudget | None = None,
) -> Image.Image:
    """Check, decode (reduced towards ``fit`` pixels a side) and convert to RGB; :class:`InputError` otherwise.

    ``limits`` defaults to :class:`ImageLimits` (the dataset formats); ``budget`` is charged the
    pixels decoded.
    """
    limits = limits or ImageLimits()
    label = name or (str(source) if not isinstance(source, bytes) else "<upload>")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115  (closed by the caller)
    except OSError as exc:
        raise InputError(f"cannot read image: {exc.strerror or exc}", file=label) from exc
    with handle:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = _open_header(handle, limits.formats, label)
                _check_size(image.size, limits, label)
                if fit is not None and image.format == "JPEG":
                    image.draft("RGB", (fit, fit))  # scale chosen so both sides stay >= fit
                if budget is not None:
                    budget.charge(image.size[0] * image.size[1], label)
                image.load()
                rgb = image if image.mode == "RGB" else image.convert("RGB")  # CMYK, 16-bit, float: RGB or refused
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise TooManyPixels(f"refused as a decompression bomb: {exc}", file=label) from exc
        except Exception as exc:  # PIL raises many types for corrupt data
            # PIL names in-memory files by their repr (an address): say which upload instead.
            detail = _OBJECT_REPR.sub(label, str(exc))
            raise InputError(f"not a readable image ({type(exc).__name__}: {detail})", file=label) from exc
    if fit is not None and min(rgb.size) >= 2 * fit:  # formats without reduced decoding: shrink right away
        rgb = rgb.reduce(min(rgb.size) // fit)
    return rgb


def _open_header(handle: BinaryIO, formats: tuple[str, ...], label: str) -> Image.Image:
    """Parse the header with the allowed plugins only; name the format of a refused file."""
    try:
        return Image.open(handle, formats=list(formats))
    except Image.UnidentifiedImageError as exc:
        handle.seek(0)
        found = sniff_format(handle.read(_SNIFF_BYTES))
        expected = ", ".join(formats[:-1]) + f" or {formats[-1]}" if len(formats) > 1 else formats[0]
        expected = expected.replace("WEBP", "WebP")
        if found is None:
            raise InputError(f"not an image ({expected} expected)", file=label) from exc
        if found in formats:  # the right magic bytes, then a header the plugin could not parse
            raise InputError(f"not a readable image (corrupt {found} header)", file=label) from exc
        raise UnsupportedFormat(f"{found} images are not accepted ({expected} expected)", file=label) from exc


def sniff_format(prefix: bytes) -> str | None:
    """The Pillow format whose magic bytes ``prefix`` starts with, without opening it (None if none)."""
    Image.init()
    for fmt, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(prefix):
                return fmt
        except Exception:  # noqa: BLE001, S112  (a plugin's check on a short prefix)
            continue
    return None


def _check_size(size: tuple[int, int], limits: ImageLimits, label: str) -> None:
    width, height = size
    max_pixels = limits.max_pixels
    if width * height > max_pixels:
        raise TooManyPixels(f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
                            "(refused as a possible decompression bomb)", file=label)
    if max(width, height) > limits.max_side:
        raise TooManyPixels(f"image is {width}x{height}; no side may exceed {limits.max_side} pixels", file=label)
    if min(width, height) < limits.min_side:
        raise InputError(f"image is {width}x{height}; both sides must be at least {limits.min_side} pixels",
                         file=label)


def check_image(path: str | Path, limits: ImageLimits | None = None) -> None:
    """Verify that ``path`` is a complete, decodable image within ``limits``."""
    open_image(path, limits=limits)
