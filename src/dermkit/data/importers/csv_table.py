"""Any CSV, with its columns mapped to case fields on the command line (``-o image=file ...``).

For one-off collections that have no importer of their own: the mapping says which column
holds what, and every value goes through the same parsers and ontology as the named sources.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, Where, checked_label_source, register_importer
from dermkit.data.importers.csv_files import CsvColumns, misspelling_hint, read_csv, rows
from dermkit.data.importers.image_paths import locate_image
from dermkit.data.importers.values import (
    is_missing,
    parse_body_site,
    parse_fitzpatrick,
    parse_float,
    parse_int,
    parse_sex,
)
from dermkit.data.schema import ACQUISITIONS
from dermkit.data.table import Case
from dermkit.ontology import UnknownTermError

# Option keys that name a CSV column, and option keys that set the run.
COLUMN_KEYS = ("case_id", "image", "diagnosis", "age", "sex", "fitzpatrick", "monk", "body_site",
               "patient_id", "lesion_id", "caption")
SETTING_KEYS = ("images", "label_source", "acquisition", "licence", "unlabelled")
IMAGE_SEPARATOR = ";"
YES_NO = {"yes": True, "true": True, "no": False, "false": False}


@register_importer
class CSVImporter(Importer):
    """PATH is a CSV file; ``-o FIELD=COLUMN`` maps its columns (see ``docs/importers.md``)."""

    name = "csv"
    description = "any CSV, columns mapped with -o field=column"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        known = COLUMN_KEYS + SETTING_KEYS
        for key in self.options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"unknown csv option{hint}; known: {', '.join(known)}", field=key)
        if "image" not in self.options:
            raise InputError("map the image column with -o image=COLUMN", field="image")
        unlabelled = self.options.get("unlabelled", "no").strip().lower()
        if unlabelled not in YES_NO:
            raise InputError(f"unlabelled must be yes or no, got {unlabelled!r}", field="unlabelled")
        if "diagnosis" not in self.options and not YES_NO[unlabelled]:
            raise InputError("map the label column with -o diagnosis=COLUMN, or import without labels "
                             "with -o unlabelled=yes", field="diagnosis")
        acquisition = self.options.get("acquisition")
        if acquisition is not None and acquisition not in ACQUISITIONS:
            raise InputError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}", field="acquisition")

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        if path.is_dir():
            raise InputError("the csv source reads one CSV file, not a folder", file=path)
        label_source = checked_label_source(self.options, context, default=self.name)
        columns = {key: column for key, column in self.options.items() if key in COLUMN_KEYS}
        # The mapped columns are what it reads; each is required, with an error naming its -o key.
        source = read_csv(path, CsvColumns(required=(), optional=tuple(columns.values())))
        for key, column in columns.items():
            if column not in source.columns:
                raise InputError(f"column mapped by -o {key}={column} is missing"
                                 f"{misspelling_hint(column, source.columns)}", file=path, field=column)
        roots = [Path(self.options.get("images", path.parent))]
        for number, row in rows(source, "csv"):
            where = Where(path, number)
            try:
                yield context.locate(self._case(row, columns, where, roots, label_source, context), where,
                                     columns.get("case_id", columns["image"]), columns["image"])
            except InputError as error:
                context.reject(error)

    def _case(
        self,
        row: Mapping[str, str],
        columns: Mapping[str, str],
        where: Where,
        roots: list[Path],
        label_source: str,
        context: ImportContext,
    ) -> Case:
        def value(key: str, parse: Callable[[str, Where, str], Any] | None = None) -> Any:
            """The mapped column's value, parsed; errors name the mapped field and the column."""
            if key not in columns:
                return None
            column = columns[key]
            raw = row[column]
            if parse is None:
                return None if is_missing(raw) else raw.strip()
            try:
                return parse(raw, where, column)
            except InputError as error:
                raise InputError(f"{key}: {error.message}", file=where.file, row=where.row, field=column) from error

        images = [
            locate_image(text, roots, where, columns["image"])
            for text in row[columns["image"]].split(IMAGE_SEPARATOR)
            if text.strip()
        ]
        if not images:
            raise where.error(columns["image"], "image: no image path")
        diagnosis = value("diagnosis")
        condition = None
        if diagnosis is not None:
            try:
                condition = context.ontology.map_label(label_source, diagnosis)
            except UnknownTermError as exc:
                raise where.error(columns["diagnosis"], f"diagnosis: {exc}") from exc
        case_id = value("case_id") or str(Path(row[columns["image"]].split(IMAGE_SEPARATOR)[0].strip()))
        return Case(
            case_id=f"{self.name}:{case_id}",
            image_paths=[str(image.resolve()) for image in images],
            source=self.name,
            age=value("age", lambda v, w, f: parse_float(v, w, f, 0, 120)),
            sex=value("sex", parse_sex),
            fitzpatrick=value("fitzpatrick", parse_fitzpatrick),
            monk=value("monk", lambda v, w, f: parse_int(v, w, f, 1, 10)),
            body_site=value("body_site", lambda v, w, f: parse_body_site(v, context, w, f)),
            caption=value("caption"),
            diagnosis=diagnosis,
            diagnosis_id=condition,
            differential=None if condition is None else single_label(condition),
            patient_id=value("patient_id"),
            lesion_id=value("lesion_id"),
            acquisition=self.options.get("acquisition"),
            licence=self.options.get("licence"),
        )
