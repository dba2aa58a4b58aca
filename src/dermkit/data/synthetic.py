"""A small synthetic dataset in HAM10000's released layout, for demos and tests without real data.

Images are smooth blobs whose colour depends on the class, so a model can learn something and a
pipeline run on it exercises the real importer, not a shortcut.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from dermkit.core.atomic import atomic_dir

HAM_CODES = ("nv", "mel", "bkl", "bcc", "akiec", "vasc", "df")
_SITES = ("back", "trunk", "lower extremity", "upper extremity", "face", "abdomen", "chest")
_COLOURS = {
    "nv": (150, 100, 70), "mel": (60, 40, 40), "bkl": (170, 140, 100), "bcc": (200, 150, 150),
    "akiec": (210, 120, 110), "vasc": (190, 40, 60), "df": (160, 110, 90),
}


def _blob(rng: np.random.Generator, colour: tuple[int, int, int], size: int) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy = rng.uniform(0.35, 0.65, 2) * size
    radius = rng.uniform(0.15, 0.35) * size
    mask = np.clip(1.2 - np.hypot(xx - cx, yy - cy) / radius, 0, 1)[..., None]
    skin = np.array([225, 190, 165]) + rng.normal(0, 8, 3)
    pixels = skin * (1 - mask) + np.array(colour) * mask + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_synthetic_ham(out_dir: str | Path, n_cases: int = 140, seed: int = 0, size: int = 64) -> Path:
    """Write ``metadata.csv`` + ``images/`` like HAM10000 (two images for some lesions)."""
    rng = np.random.default_rng(seed)
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        rows = []
        for index in range(n_cases):
            # The first 20 images come in pairs of one lesion, as HAM10000 has repeated lesions.
            lesion_number = index // 2 if index < 20 else index
            code = HAM_CODES[lesion_number % len(HAM_CODES)]
            lesion = f"HAM_{lesion_number:07d}"
            image_id = f"ISIC_{index:07d}"
            _blob(rng, _COLOURS[code], size).save(tmp / "images" / f"{image_id}.jpg", quality=92)
            rows.append({
                "lesion_id": lesion, "image_id": image_id, "dx": code, "dx_type": "histo",
                "age": f"{rng.integers(20, 85)}.0", "sex": rng.choice(["male", "female"]),
                "localization": rng.choice(_SITES),
            })
        with open(tmp / "metadata.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return Path(out_dir)
