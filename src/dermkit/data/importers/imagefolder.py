"""A folder per class (``PATH/<class name>/**/*.jpg``): the layout of many downloaded image sets.

Folder names are condition names, synonyms or, with ``-o label_source=SOURCE``, that source's
codes; a folder the ontology does not know is an error naming the folder, never a new class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, checked_label_source, register_importer
from dermkit.data.importers.image_paths import IMAGE_SUFFIXES
from dermkit.data.schema import ACQUISITIONS
from dermkit.data.table import Case
from dermkit.ontology import UnknownTermError

OPTION_KEYS = ("label_source", "acquisition", "licence")


def _visible(path: Path, root: Path) -> bool:
    """False for anything inside a hidden folder or named like a hidden file (.DS_Store, .git)."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


@register_importer
class ImageFolderImporter(Importer):
    """PATH holds one folder per class; images may sit in sub-folders of their class folder."""

    name = "imagefolder"
    description = "one folder of images per class"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        for key in self.options:
            if key not in OPTION_KEYS:
                raise InputError(f"unknown imagefolder option; known: {', '.join(OPTION_KEYS)}", field=key)
        acquisition = self.options.get("acquisition")
        if acquisition is not None and acquisition not in ACQUISITIONS:
            raise InputError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}", field="acquisition")

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        if not path.is_dir():
            raise InputError("expected a folder with one sub-folder per class", file=path)
        label_source = checked_label_source(self.options, context, default=self.name)
        classes = sorted(p for p in path.iterdir() if p.is_dir() and _visible(p, path))
        if not classes:
            raise InputError("no class folders here", file=path)
        for folder in classes:
            try:
                condition = context.ontology.map_label(label_source, folder.name)
            except UnknownTermError as exc:
                context.reject(InputError(f"class folder {folder.name!r}: {exc}", file=folder, field="class folder"))
                continue
            images = sorted(p for p in folder.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and _visible(p, path))
            for image in images:
                yield Case(
                    case_id=f"{self.name}:{image.relative_to(path).as_posix()}",
                    image_paths=[str(image.resolve())],
                    source=self.name,
                    diagnosis=folder.name,
                    diagnosis_id=condition,
                    differential=single_label(condition),
                    acquisition=self.options.get("acquisition"),
                    licence=self.options.get("licence"),
                )
