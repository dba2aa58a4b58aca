"""Image paths a source names: kept inside its images folder, and found whatever their suffix or sub-folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dermkit.data.importers.base import Where

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_name(text: str, where: Where, field_name: str) -> Path:
    """An image path as a CSV names it: relative and inside its images folder, else the row is refused.

    ``../`` that climbs out of the folder, or an absolute path, would let a CSV point a table (and
    whatever later reads its images) anywhere on the machine. The check is on the text, so a
    symbolic link inside the images folder still works.
    """
    stripped = text.strip()
    if not stripped:
        raise where.error(field_name, "image name is empty")
    normal = os.path.normpath(stripped)
    if os.path.isabs(normal) or normal in (os.curdir, os.pardir) or normal.startswith(os.pardir + os.sep):
        raise where.error(field_name, f"image path {stripped!r} leaves the images folder")
    return Path(normal)


def find_image(folder: Path, stem: str, where: Where, field_name: str, default_suffix: str = ".jpg") -> Path:
    """The image ``stem`` in ``folder`` with whichever known suffix exists, else the expected path.

    A missing image is then reported by the image check of :func:`run_import` (with its row),
    and ``--no-image-check`` keeps the expected path for images that are fetched later.
    """
    base = folder / image_name(stem, where, field_name)
    for suffix in IMAGE_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.exists():
            return candidate
    return base.with_name(base.name + default_suffix)


def locate_image(text: str, roots: Sequence[Path], where: Where, field_name: str) -> Path:
    """The image a CSV names (inside the images folder, :func:`image_name`), under the first root that holds it.

    Under each root the path is tried as written, then by file name alone, so images may be
    kept in the released sub-folders or all in one folder. When none exists the path under the
    first root is returned, for the image check of ``run_import`` to report with its row.
    """
    relative = image_name(text, where, field_name)
    candidates = [candidate for root in roots for candidate in (root / relative, root / relative.name)]
    return next((candidate for candidate in candidates if candidate.is_file()), candidates[0])
