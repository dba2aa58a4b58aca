"""HAM10000 (Tschandl et al. 2018): dermoscopy, ``metadata.csv`` with lesion_id, image_id, dx, ..."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, Where, register_importer
from dermkit.data.importers.csv_files import CsvColumns, find_csv, read_csv, rows
from dermkit.data.importers.image_paths import find_image
from dermkit.data.importers.values import is_missing, parse_body_site, parse_float, parse_sex
from dermkit.data.table import Case


@register_importer
class HAM10000Importer(Importer):
    """PATH is the folder holding ``metadata.csv`` (or ``HAM10000_metadata.csv``) and ``images/``."""

    name = "ham10000"
    licence = "CC BY-NC 4.0"
    acquisition = "dermoscopic"
    description = "HAM10000 dermoscopy (ISIC 2018 task 3 classes)"
    csv_columns: ClassVar[dict[str, CsvColumns]] = {"metadata.csv": CsvColumns(required=("lesion_id", "image_id", "dx", "dx_type", "age", "sex",
                                                       "localization"))}

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        csv_path = find_csv(path, ("metadata.csv", "HAM10000_metadata.csv"))
        image_dir = Path(self.options.get("images", csv_path.parent / "images"))
        source = read_csv(csv_path, self.csv_columns["metadata.csv"])
        for number, row in rows(source, "ham10000"):
            where = Where(csv_path, number)
            try:
                image = find_image(image_dir, row["image_id"], where, "image_id")
                condition = self.map_label(row["dx"], context, file=csv_path, row=number, field_name="dx")
                yield context.locate(Case(
                    case_id=f"ham10000:{row['image_id']}",
                    image_paths=[str(image.resolve())],
                    source=self.name,
                    age=parse_float(row["age"], where, "age", 0, 120),
                    sex=parse_sex(row["sex"], where, "sex"),
                    body_site=parse_body_site(row["localization"], context, where, "localization"),
                    diagnosis=row["dx"],
                    diagnosis_id=condition,
                    differential=single_label(condition),
                    lesion_id=None if is_missing(row["lesion_id"]) else row["lesion_id"],
                    extra={"dx_type": row["dx_type"] or None},
                ), where, "image_id")
            except InputError as error:
                context.reject(error)
