"""Fitzpatrick 17k (Groh et al. 2021): clinical atlas photos labelled with condition and skin type.

The release is a CSV of image URLs; the images are fetched separately and saved as
``<md5hash>.jpg`` (the dataset's own download naming). Each case keeps that expected path, so
``--no-image-check`` imports the labels alone (skin-type statistics, ontology coverage) and the
same table works once the images are downloaded there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, Where, register_importer
from dermkit.data.importers.csv_files import CsvColumns, find_csv, read_csv, rows
from dermkit.data.importers.image_paths import find_image
from dermkit.data.importers.values import is_missing, parse_int
from dermkit.data.table import Case

KEPT_IN_EXTRA = ("nine_partition_label", "three_partition_label", "qc", "url", "url_alphanum")


@register_importer
class Fitzpatrick17kImporter(Importer):
    """PATH is ``fitzpatrick17k.csv`` or its folder; images from ``-o images=DIR`` (default ``images/``)."""

    name = "fitzpatrick17k"
    licence = "CC BY-NC-SA 3.0"
    acquisition = "clinical"
    description = "Fitzpatrick 17k clinical atlas photos (114 conditions, Fitzpatrick skin type)"
    csv_columns: ClassVar[dict[str, CsvColumns]] = {"fitzpatrick17k.csv": CsvColumns(required=("md5hash", "fitzpatrick_scale", "fitzpatrick_centaur",
                                                             "label", *KEPT_IN_EXTRA))}

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        csv_path = find_csv(path, ("fitzpatrick17k.csv",))
        image_dir = Path(self.options.get("images", csv_path.parent / "images"))
        source = read_csv(csv_path, self.csv_columns["fitzpatrick17k.csv"])
        for number, row in rows(source, self.name):
            where = Where(csv_path, number)
            try:
                if is_missing(row["md5hash"]):
                    raise where.error("md5hash", "image hash is empty")
                condition = self.map_label(row["label"], context, file=csv_path, row=number, field_name="label")
                extra: dict[str, str | int | None] = {
                    name: None if is_missing(row[name]) else row[name] for name in KEPT_IN_EXTRA
                }
                # A second, automatic skin-type estimate: kept for agreement studies, not as the label.
                extra["fitzpatrick_centaur"] = parse_int(row["fitzpatrick_centaur"], where, "fitzpatrick_centaur", 1, 6)
                yield context.locate(Case(
                    case_id=f"{self.name}:{row['md5hash']}",
                    image_paths=[str(find_image(image_dir, row["md5hash"], where, "md5hash").resolve())],
                    source=self.name,
                    fitzpatrick=parse_int(row["fitzpatrick_scale"], where, "fitzpatrick_scale", 1, 6),
                    diagnosis=row["label"],
                    diagnosis_id=condition,
                    differential=single_label(condition),
                    extra=extra,
                ), where, "md5hash")
            except InputError as error:
                context.reject(error)
