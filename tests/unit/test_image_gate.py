"""The one image gate (dermkit.data.images): formats from the header, sides, pixels, reduced decoding, budgets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image, ImageFile

from conftest import png_claiming  # tests/ is on sys.path under pytest
from dermkit.core.errors import InputError
from dermkit.data.images import (
    UPLOAD_FORMATS,
    ImageLimits,
    OverBudget,
    PixelBudget,
    TooManyPixels,
    UnsupportedFormat,
    open_image,
)
from dermkit.data.importers import run_import

STRICT = ImageLimits(formats=UPLOAD_FORMATS, min_side=32)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def smooth(width: int, height: int) -> Image.Image:
    """A large photo-like image that encodes small (a gradient)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return Image.fromarray(np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8))


@pytest.mark.parametrize("fmt", ["TIFF", "EPS", "GIF", "BMP"])
def test_other_formats_are_refused_naming_the_format(fmt: str) -> None:
    with pytest.raises(UnsupportedFormat, match=f"^.*{fmt} images are not accepted \\(JPEG, PNG or WebP expected\\)"):
        open_image(encode(noise(64, 64), fmt), name="upload.bin", limits=STRICT)


def test_an_eps_never_reaches_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[object] = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: called.append(args))
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: called.append("parsed"))
    with pytest.raises(UnsupportedFormat, match="EPS"):
        open_image(encode(noise(64, 64), "EPS"), limits=STRICT)
    assert called == []  # the EPS plugin was not even asked to parse the header


def test_datasets_may_use_bmp_tiff_and_gif_but_not_eps() -> None:
    for fmt in ("BMP", "TIFF", "GIF"):
        assert open_image(encode(noise(40, 30), fmt)).size == (40, 30)
    with pytest.raises(UnsupportedFormat, match="EPS images are not accepted"):
        open_image(encode(noise(40, 30), "EPS"))


@pytest.mark.parametrize(("size", "message"), [((1, 1), "at least 32"), ((1, 20_000), "no side may exceed 16384"),
                                               ((20, 400), "at least 32")])
def test_sides_out_of_range_are_refused(size: tuple[int, int], message: str) -> None:
    with pytest.raises(InputError, match=message):
        open_image(encode(Image.new("RGB", size), "PNG"), limits=STRICT)


@pytest.mark.parametrize("side", [8_000, 20_000])  # over our 50 MP limit; over Pillow's own bomb limit
def test_a_png_bomb_says_decompression_bomb(side: int) -> None:
    data = png_claiming(side, side)
    assert len(data) < 1000
    with pytest.raises(TooManyPixels, match="decompression bomb"):
        open_image(data, limits=STRICT)


def test_a_large_jpeg_is_decoded_at_reduced_size_by_draft(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(smooth(4000, 3000), "JPEG", quality=85)
    decoded: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def recording_load(self: ImageFile.ImageFile):  # the size the decoder fills
        if self.tile:
            decoded.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    image = open_image(data, limits=STRICT, fit=224)
    assert image.size == (500, 375)  # the 1/8 DCT scale: both sides still >= 224
    assert decoded == [(500, 375)]  # decoded at that size, never in full
    assert open_image(data, limits=STRICT, fit=448).size == (1000, 750)  # 1/4: at 1/8, 375 < 448
    assert open_image(data, limits=STRICT).size == (4000, 3000)
    assert decoded[-1] == (4000, 3000)


def test_formats_without_reduced_decoding_are_shrunk_after_decoding() -> None:
    image = open_image(encode(smooth(2000, 1000), "PNG"), limits=STRICT, fit=224)
    assert image.size == (500, 250)  # reduce(1000 // 224 = 4)
    assert image.mode == "RGB"


def test_the_request_budget_counts_pixels_as_decoded() -> None:
    budget = PixelBudget(400_000)
    big_jpeg = encode(smooth(4000, 3000), "JPEG")
    open_image(big_jpeg, limits=STRICT, fit=224, budget=budget)
    assert budget.spent == 500 * 375  # charged at the draft size, not 12 MP
    open_image(big_jpeg, limits=STRICT, fit=224, budget=budget)
    with pytest.raises(OverBudget, match="over its budget of 400000") as refused:
        open_image(big_jpeg, name="images[2]", limits=STRICT, fit=224, budget=budget)
    assert refused.value.file == "images[2]"
    assert budget.spent == 2 * 500 * 375  # a refused image is not charged


def test_importers_refuse_an_eps_named_like_a_jpeg(tmp_path: Path) -> None:
    root = tmp_path / "classes"
    (root / "nevus").mkdir(parents=True)
    (root / "nevus" / "good.png").write_bytes(encode(noise(40, 40), "PNG"))
    (root / "nevus" / "bad.jpg").write_bytes(encode(noise(40, 40), "EPS"))
    result = run_import("imagefolder", root, tmp_path / "out", on_error="skip")
    assert result.cases == 1
    assert len(result.problems) == 1 and "EPS images are not accepted" in result.problems[0]["message"]


def test_a_corrupt_header_of_an_allowed_format_is_not_called_unsupported() -> None:
    data = bytearray(encode(noise(64, 64), "PNG"))
    data[12:16] = b"XXXX"  # the IHDR chunk's name
    with pytest.raises(InputError, match=r"not a readable image \(corrupt PNG header\)") as caught:
        open_image(bytes(data), limits=STRICT)
    assert not isinstance(caught.value, UnsupportedFormat)


def test_serve_flags_reach_the_config_and_their_help_states_its_defaults() -> None:
    import re
    from dataclasses import fields

    from dermkit.cli import build_parser
    from dermkit.cli.serve import _serve_image_limits
    from dermkit.serve.config import ServeConfig

    parser = build_parser()
    args = parser.parse_args(["serve", "--max-pixels", "1000", "--min-side", "8", "--max-side", "900",
                              "--max-request-pixels", "5000",
                              "--decode-side", "224", "--decode-threads", "1", "--max-concurrent", "3",
                              "--queue-timeout", "2.5"])
    config = ServeConfig(**_serve_image_limits(args))
    assert (config.max_pixels, config.min_side, config.max_side, config.max_request_pixels, config.decode_side, config.decode_threads,
            config.max_concurrent, config.queue_timeout_s) == (1000, 8, 900, 5000, 224, 1, 3, 2.5)
    assert _serve_image_limits(parser.parse_args(["serve"])) == {}  # unset flags keep ServeConfig's defaults
    serve_parser = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    helps = {action.dest: action.help for action in serve_parser._actions}
    defaults = {f.name: f.default for f in fields(ServeConfig)}
    assert len(_serve_image_limits(args)) == 8
    for name in _serve_image_limits(args):
        stated = re.search(r"\(([\d,.]+)\)$", helps[name] or "")
        assert stated, name
        assert float(stated.group(1).replace(",", "")) == defaults[name], name
