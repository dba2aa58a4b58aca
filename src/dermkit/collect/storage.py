"""Image files beside the database: written before the commit, removed on rollback, swept at start.

A case and its images are one transaction, and each file is complete on disk (atomic rename)
before the rows naming it are committed. A process killed between the file and the commit leaves
an unreferenced file, never a row without its file; :meth:`MediaStore.sweep` removes such files
when the server starts (before it serves requests, so nothing is in flight: the server runs one
process, see ``docs/collect.md``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path

from dermkit.core.atomic import atomic_write_bytes

SUFFIX = ".jpg"


class MediaStore:
    """A flat folder of ``<random>.jpg`` files named by the ``case_images.file_name`` column."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if Path(name).name != name or not name.endswith(SUFFIX):
            raise ValueError(f"not a media file name: {name!r}")
        return self.root / name

    def save(self, data: bytes) -> str:
        """Write ``data`` under a fresh random name (complete or absent) and return the name."""
        name = secrets.token_hex(16) + SUFFIX
        atomic_write_bytes(self.root / name, data)
        return name

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            self.path(name).unlink(missing_ok=True)

    def files(self) -> set[str]:
        """Every stored file, and temporary files of interrupted writes (``.name.tmp``)."""
        return {p.name for p in self.root.iterdir() if p.is_file()}

    def sweep(self, referenced: set[str]) -> list[str]:
        """Remove every file no row references (interrupted uploads and withdrawals); return them."""
        orphans = sorted(self.files() - referenced)
        for name in orphans:
            (self.root / name).unlink(missing_ok=True)
        return orphans
