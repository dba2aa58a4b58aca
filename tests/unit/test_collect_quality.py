"""The upload gate: formats, sizes, sharpness, EXIF stripped and applied, duplicate hashes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

pytest.importorskip("sqlalchemy", reason="the collect extra is not installed")

from dermkit.collect import quality
from dermkit.collect.quality import check_upload, closest
from dermkit.core.errors import InputError


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def textured(width: int = 240, height: int = 160, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_exif_is_removed_and_its_orientation_applied() -> None:
    image = textured(240, 160)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    exif[0x010F] = "PhoneMaker"  # camera make: must not survive
    checked = check_upload(encode(image, exif=exif.tobytes()), "image_1")
    stored = Image.open(io.BytesIO(checked.data))
    assert stored.format == "JPEG" and not stored.getexif() and "exif" not in stored.info
    assert (checked.width, checked.height) == stored.size == (160, 240)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"%PDF-1.4 not an image", "not an image"),
    (encode(textured(), "GIF"), "GIF images are not accepted"),
    (encode(textured(100, 300)), "at least 128 pixels"),
    (encode(textured().filter(ImageFilter.GaussianBlur(6))), "blurred"),
    (encode(textured())[:2000], "not a readable image"),
])
def test_bad_uploads_are_refused_naming_the_field(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as error:
        check_upload(data, "image_2")
    assert error.value.field == "image_2"


def test_pixel_and_byte_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quality, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(InputError, match="over the limit of 10000"):
        check_upload(encode(textured()), "image_1")
    monkeypatch.setattr(quality, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(InputError, match="bytes, over the limit"):
        check_upload(encode(textured()), "image_1")


def test_a_resized_reencoded_copy_is_flagged_a_different_photo_is_not() -> None:
    photo = textured(400, 400).filter(ImageFilter.GaussianBlur(1))
    original = check_upload(encode(photo, "PNG"), "image_1")
    copy = check_upload(encode(photo.resize((300, 300)), "JPEG", quality=70), "image_1")
    other = check_upload(encode(textured(400, 400, seed=1).filter(ImageFilter.GaussianBlur(1)), "PNG"), "image_1")
    known = {7: original.phash}
    assert closest(copy.phash, known) is not None and closest(copy.phash, known)[0] == 7
    assert closest(other.phash, known) is None
    assert closest(original.phash, {}) is None
