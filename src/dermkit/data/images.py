"""Safe image opening: a pixel limit against decompression bombs, full decode to catch truncation."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

from PIL import Image

from dermkit.core.errors import InputError

_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")

# 50 megapixels: far above any photo in these datasets, far below what exhausts memory.
MAX_PIXELS = 50_000_000


def open_image(source: str | Path | bytes, *, name: str | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, fully decode and convert to RGB; raise :class:`InputError` naming the file otherwise."""
    label = name or (str(source) if not isinstance(source, bytes) else "<upload>")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    except OSError as exc:
        raise InputError(f"cannot read image: {exc.strerror or exc}", file=label) from exc
    with handle:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(handle)
                width, height = image.size
                if width * height > max_pixels:
                    raise InputError(
                        f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
                        file=label,
                    )
                image.load()
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InputError(f"refused as a decompression bomb: {exc}", file=label) from exc
        except Exception as exc:  # PIL raises many types for corrupt data
            # PIL names in-memory files by their repr (an address): say which upload instead.
            detail = _OBJECT_REPR.sub(label, str(exc))
            raise InputError(f"not a readable image ({type(exc).__name__}: {detail})", file=label) from exc
        return image.convert("RGB")


def check_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> None:
    """Verify that ``path`` is a complete, decodable image within the pixel limit."""
    open_image(path, max_pixels=max_pixels)
