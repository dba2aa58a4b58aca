"""ISIC Archive image folders relabelled as one table (``../shared/data/isic-archive``): an external test set.

``metadata.csv`` has ``image_id, file, label, ham10000_lesion_id``. ``label`` is the folder name
of the 9-class release ("pigmented benign keratosis", "squamous cell carcinoma", ...); folder
names are condition names or synonyms, so they map through the ontology like ``imagefolder``'s.
``ham10000_lesion_id`` becomes the lesion id where the image is a HAM10000 image, so lesions stay
whole in any split and a leak check against a HAM10000 table can compare them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, Where, checked_label_source, register_importer
from dermkit.data.importers.csv_files import CsvColumns, find_csv, read_csv, rows
from dermkit.data.importers.image_paths import locate_image
from dermkit.data.importers.values import is_missing
from dermkit.data.table import Case
from dermkit.ontology import UnknownTermError


@register_importer
class ISICArchiveImporter(Importer):
    """PATH is the folder holding ``metadata.csv`` (or the CSV); ``file`` is relative to it or to ``-o images=DIR``."""

    name = "isic-archive"
    licence = "CC BY-NC 4.0"
    acquisition = "dermoscopic"
    description = "ISIC Archive 9-class folders as one metadata.csv (image_id, file, label, ham10000_lesion_id)"
    csv_columns: ClassVar[dict[str, CsvColumns]] = {"metadata.csv": CsvColumns(required=("image_id", "file", "label"),
                                              optional=("ham10000_lesion_id",))}

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        csv_path = find_csv(path, ("metadata.csv",))
        roots = [Path(self.options["images"])] if "images" in self.options else []
        roots.append(csv_path.parent)
        label_source = checked_label_source(self.options, context, default=self.name)
        source = read_csv(csv_path, self.csv_columns["metadata.csv"])
        for number, row in rows(source, self.name):
            where = Where(csv_path, number)
            try:
                image_id = row["image_id"].strip()
                if not image_id:
                    raise where.error("image_id", "image id is empty")
                if is_missing(row["file"]):
                    raise where.error("file", "image file is empty")
                try:
                    condition = context.ontology.map_label(label_source, row["label"])
                except UnknownTermError as exc:
                    raise where.error("label", str(exc)) from exc
                lesion = row["ham10000_lesion_id"].strip()
                case = Case(
                    case_id=f"{self.name}:{image_id}",
                    image_paths=[str(locate_image(row["file"], roots, where, "file").resolve())],
                    source=self.name,
                    diagnosis=row["label"],
                    diagnosis_id=condition,
                    differential=single_label(condition),
                    lesion_id=None if is_missing(lesion) else lesion,
                )
                yield context.locate(case, where, "image_id", "file")
            except InputError as error:
                context.reject(error)
