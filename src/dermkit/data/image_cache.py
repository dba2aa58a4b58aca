"""Decoded images kept in memory, so a training run decodes each image file once, not once an epoch.

The images are stored as decoded (:func:`~dermkit.data.images.open_image`, full size, RGB uint8),
before any transform, so a transform sees exactly the pixels a fresh decode would give and the
random augmentation still differs every epoch. Storage stops at the first image that would take
it past a byte budget; the images from there on are decoded on every use. The arrays are plain numpy buffers: data-loader workers forked after
:meth:`DecodedImages.fill` share them copy-on-write instead of each decoding its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from dermkit.data.images import open_image


class DecodedImages:
    """Images by path, decoded once up to ``budget_bytes``; :meth:`open` reads the rest from disk."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._pixels: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._pixels)

    def fill(self, paths: Iterable[str | Path]) -> None:
        """Decode and keep each new path in order until one would overrun the budget."""
        if self.budget_bytes <= 0:
            return
        for path in map(str, paths):
            if path in self._pixels:
                continue
            pixels = np.asarray(open_image(path))
            if self.used_bytes + pixels.nbytes > self.budget_bytes:
                return
            self._pixels[path] = pixels
            self.used_bytes += pixels.nbytes

    def open(self, path: str | Path) -> Image.Image:
        """The image at ``path`` as :func:`open_image` gives it: from memory when kept, else decoded now."""
        pixels = self._pixels.get(str(path))
        return open_image(path) if pixels is None else Image.fromarray(pixels)
