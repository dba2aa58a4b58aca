"""The perceptual hash keeps its bits now that ``imagehash`` computes it.

The hex strings were computed from these real files with dermkit's own DCT implementation (a
64×64 LANCZOS grey image, unnormalised DCT-II, 16×16 low frequencies above their median) just
before it was replaced by ``imagehash.phash(hash_size=16)``; on 400 HAM10000 and PAD-UFES-20
images the two agreed on every bit. A changed hash would silently move every stored leak and
dedup result, so this pins it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dermkit.data.image_hash import phash
from dermkit.data.images import open_image

HAM_REFERENCE = {
    "ISIC_0024306.jpg": "e6ece24c9b1c94b1ceb4cd9309738c8e0c4e6971cd9513dfb352a933d5269a32",
    "ISIC_0024307.jpg": "e8704c4a9b9e338d9434d9b76ecc6506cb4aba5b65b1b524b6d78d05dd226466",
    "ISIC_0024308.jpg": "fefb9d44d296e82aad4546ea30f59c13ab0a599884ef4285e4d2e26691ad1e3e",
    "ISIC_0024309.jpg": "bf75c0fbcc4c3e609a1e217d90d3cc0f39684764607ec1684e1a6f0ee7239b87",
}
PAD_REFERENCE = {
    "PAT_1448_1551_366.png": "f3d0ce0ecd3d31c134cfc72c936d4cf0899c334c36d264b39e638e47799e21b0",
    "PAT_1451_1560_616.png": "a39d253a9cf7999e319c9a74cc66998dfc8426636671d98b99e22657009999d3",
}


def _check(images: Path, reference: dict[str, str]) -> None:
    for name, expected in reference.items():
        path = images / name
        if not path.is_file():
            pytest.skip(f"real image {path} is absent from ../shared/data")
        assert phash(open_image(path)).tobytes().hex() == expected, name


def test_ham10000_hashes_match_the_former_implementation(ham_dir: Path) -> None:
    _check(ham_dir / "images", HAM_REFERENCE)


def test_pad_ufes_hashes_match_the_former_implementation(pad_ufes_dir: Path) -> None:
    _check(pad_ufes_dir / "images", PAD_REFERENCE)
