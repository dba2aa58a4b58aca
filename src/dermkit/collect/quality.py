"""The upload quality gate: format, size and sharpness checks, a perceptual hash, EXIF stripped.

Every accepted photo passes dermkit's image gate (:func:`dermkit.data.images.open_image`: JPEG,
PNG or WebP only, read from the header before any decoding; side and pixel limits), is turned
upright by its EXIF orientation and re-encoded as JPEG without metadata, so no location or
device data is stored. :class:`CheckSlots` caps how many photos are decoded at once.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dermkit.core.errors import InputError
from dermkit.data.image_hash import hamming, phash
from dermkit.data.images import UPLOAD_FORMATS, ImageLimits, open_image

MAX_IMAGE_BYTES = 15 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
MIN_SIDE = 128
# Variance of the Laplacian on a grey image no wider than 512 px. Real smartphone skin photos
# (PAD-UFES-20) score 6 and up; a Gaussian blur of radius 3 brings them under 2.
MIN_SHARPNESS = 2.0
SHARPNESS_SIDE = 512
# Hamming distance (of 256 bits) under which two photos count as the same picture: re-encoding
# and resizing move a hash by up to ~20 bits, distinct skin photos stay ~50 apart (image_hash.py).
DUPLICATE_BITS = 24
JPEG_QUALITY = 95
# EXIF orientation → the transpose that makes the photo upright (as PIL's ImageOps.exif_transpose).
_T = Image.Transpose
UPRIGHT = {2: _T.FLIP_LEFT_RIGHT, 3: _T.ROTATE_180, 4: _T.FLIP_TOP_BOTTOM, 5: _T.TRANSPOSE,
           6: _T.ROTATE_270, 7: _T.TRANSVERSE, 8: _T.ROTATE_90}


@dataclass(frozen=True)
class CheckedImage:
    """An accepted photo: the bytes to store (JPEG, no metadata) and the gate's measurements."""

    data: bytes
    width: int
    height: int
    sharpness: float
    phash: str


def sharpness(image: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurred or featureless photos."""
    grey = image.convert("L")
    grey.thumbnail((SHARPNESS_SIDE, SHARPNESS_SIDE))
    g = np.asarray(grey, dtype=np.float32)
    laplacian = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(laplacian.var())


def check_upload(data: bytes, field: str) -> CheckedImage:
    """Accept or refuse one uploaded photo; an :class:`InputError` names the form field."""
    if not data:
        raise InputError("the file is empty", field=field)
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(f"the file has {len(data)} bytes, over the limit of {MAX_IMAGE_BYTES}", field=field)
    limits = ImageLimits(formats=UPLOAD_FORMATS, min_side=MIN_SIDE, max_pixels=MAX_IMAGE_PIXELS)
    try:
        image = open_image(data, name=field, limits=limits)
    except InputError as exc:  # the same error type (format, pixels, ...), naming the form field
        raise type(exc)(exc.message, field=field) from exc
    turn = UPRIGHT.get(_orientation(data))
    image = image.transpose(turn) if turn is not None else image
    width, height = image.size
    score = sharpness(image)
    if score < MIN_SHARPNESS:
        raise InputError(f"the photo looks blurred (sharpness {score:.1f} < {MIN_SHARPNESS}); "
                         "please retake it in focus", field=field)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)  # no exif= argument: metadata is dropped
    return CheckedImage(out.getvalue(), width, height, score, phash(image).tobytes().hex())


class Busy(Exception):
    """Every decoding slot stayed taken for the whole wait: the client should retry later."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many photos are being checked right now; please retry in {retry_after} s")
        self.retry_after = retry_after


class CheckSlots:
    """At most ``limit`` photos decoded at once, so decoding memory is bounded by it, not by the clients."""

    def __init__(self, limit: int, wait_s: float) -> None:
        if limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self.wait_s = wait_s
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot while checking one photo; :class:`Busy` after waiting ``wait_s`` for one."""
        if not self._slots.acquire(timeout=self.wait_s):
            raise Busy(max(1, math.ceil(self.wait_s)))
        try:
            yield
        finally:
            self._slots.release()


def _orientation(data: bytes) -> int:
    """The EXIF orientation tag of the original file (0 when absent)."""
    try:
        return int(Image.open(io.BytesIO(data)).getexif().get(0x0112, 0))
    except (OSError, ValueError, TypeError, SyntaxError):  # unreadable EXIF is the same as none
        return 0


def closest(phash_hex: str, known: dict[int, str]) -> tuple[int, int] | None:
    """``(image id, distance)`` of the nearest stored hash within :data:`DUPLICATE_BITS`, else None."""
    if not known:
        return None
    ids = list(known)
    stored = np.stack([np.frombuffer(bytes.fromhex(known[i]), dtype=np.uint64) for i in ids])
    distances = hamming(stored, np.frombuffer(bytes.fromhex(phash_hex), dtype=np.uint64))
    best = int(np.argmin(distances))
    return (ids[best], int(distances[best])) if distances[best] <= DUPLICATE_BITS else None
