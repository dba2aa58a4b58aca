"""ISIC challenge ground truth (2018 task 3, 2019): one-hot class columns per ``image``, dermoscopy.

The ground-truth CSV has an ``image`` column and one 0/1 column per class; exactly one must be 1.
The optional metadata CSV (``image, age_approx, anatom_site_general, lesion_id, sex``) is
joined by image name when given as ``-o metadata=FILE``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, Where, register_importer
from dermkit.data.importers.csv_files import CsvColumns, Row, find_csv, read_csv, rows
from dermkit.data.importers.image_paths import find_image
from dermkit.data.importers.values import is_missing, parse_body_site, parse_float, parse_sex
from dermkit.data.table import Case

# 2018 uses AKIEC, 2019 renamed it AK and added SCC and UNK.
CLASS_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
GROUND_TRUTH_COLUMNS = CsvColumns(required=("image",), optional=CLASS_COLUMNS)
METADATA_COLUMNS = CsvColumns(required=("image", "age_approx", "anatom_site_general", "lesion_id", "sex"))


@register_importer
class ISICImporter(Importer):
    """PATH is the ground-truth CSV or its folder; images come from ``-o images=DIR`` or lie beside it."""

    name = "isic"
    licence = "CC BY-NC 4.0"
    acquisition = "dermoscopic"
    description = "ISIC challenge dermoscopy (2018 task 3 / 2019 ground-truth CSV, optional metadata)"
    csv_columns: ClassVar[dict[str, CsvColumns]] = {"ground_truth.csv": GROUND_TRUTH_COLUMNS, "metadata.csv": METADATA_COLUMNS}

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        csv_path = _ground_truth(path)
        image_dir = Path(self.options.get("images", csv_path.parent))
        source = read_csv(csv_path, GROUND_TRUTH_COLUMNS)
        classes = _class_columns(source.columns, csv_path)
        metadata = _read_metadata(Path(self.options["metadata"])) if "metadata" in self.options else None
        for number, row in rows(source, self.name):
            where = Where(csv_path, number)
            try:
                image = row["image"].strip()
                code = _one_hot(row, classes, where)
                condition = self.map_label(code, context, file=csv_path, row=number, field_name=code)
                case = Case(
                    case_id=f"{self.name}:{image}",
                    image_paths=[str(find_image(image_dir, image, where, "image").resolve())],
                    source=self.name,
                    diagnosis=code,
                    diagnosis_id=condition,
                    differential=single_label(condition),
                )
                if metadata is not None and image in metadata:
                    meta_where, meta_row = metadata[image]
                    _add_metadata(case, meta_where, meta_row, context)
                yield context.locate(case, where, "image")
            except InputError as error:
                context.reject(error)


def _ground_truth(path: Path) -> Path:
    """The CSV itself, the folder's only ``*GroundTruth*.csv``, or the folder's only CSV."""
    if path.is_dir():
        candidates = sorted(path.glob("*[Gg]round[Tt]ruth*.csv"))
        if len(candidates) == 1:
            return candidates[0]
    return find_csv(path, ())


def _class_columns(columns: list[str], csv_path: Path) -> list[str]:
    """The class columns present; any other column is a misspelling or a different layout."""
    for column in columns:
        if column != "image" and column not in CLASS_COLUMNS:
            close = difflib.get_close_matches(column.upper(), CLASS_COLUMNS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"not an ISIC class column{hint}; known: {', '.join(CLASS_COLUMNS)}",
                             file=csv_path, field=column)
    classes = [column for column in columns if column in CLASS_COLUMNS]
    if len(classes) < 2:
        raise InputError(f"an ISIC ground truth needs one 0/1 column per class ({', '.join(CLASS_COLUMNS)})",
                         file=csv_path)
    return classes


def _one_hot(row: Mapping[str, str], classes: list[str], where: Where) -> str:
    """The one class column holding 1; every class cell must be 0 or 1."""
    positive = []
    for column in classes:
        value = parse_float(row[column], where, column)
        if value not in (0.0, 1.0):
            raise where.error(column, f"class cells must be 0 or 1, got {row[column]!r}")
        if value == 1.0:
            positive.append(column)
    if len(positive) != 1:
        found = ", ".join(positive) if positive else "none"
        raise where.error(",".join(positive or classes), f"exactly one class must be 1, found {found}")
    return positive[0]


def _read_metadata(meta_path: Path) -> dict[str, tuple[Where, Row]]:
    """Metadata rows by image name, each with its location so bad values name the metadata file."""
    source = read_csv(meta_path, METADATA_COLUMNS)
    by_image: dict[str, tuple[Where, Row]] = {}
    for number, row in rows(source, "isic metadata"):
        where = Where(meta_path, number)
        if row["image"] in by_image:
            raise where.error("image", f"image {row['image']!r} repeats row {by_image[row['image']][0].row}")
        by_image[row["image"]] = (where, row)
    return by_image


def _add_metadata(case: Case, where: Where, row: Mapping[str, str], context: ImportContext) -> None:
    """Fill the case's patient fields from its metadata row (errors name the metadata file)."""
    case.age = parse_float(row["age_approx"], where, "age_approx", 0, 120)
    case.sex = parse_sex(row["sex"], where, "sex")
    case.body_site = parse_body_site(row["anatom_site_general"], context, where, "anatom_site_general")
    case.lesion_id = None if is_missing(row["lesion_id"]) else row["lesion_id"]
