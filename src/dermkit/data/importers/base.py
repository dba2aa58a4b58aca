"""The importer contract: the :class:`Importer` base class, its registry and the state of one run.

An importer is one module with one class that yields :class:`~dermkit.data.table.Case` rows,
reading its CSVs with :mod:`.csv_files`, its values with :mod:`.values` and its image paths with
:mod:`.image_paths`; :func:`~dermkit.data.importers.pipeline.run_import` does the rest, so
importers stay short and alike.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dermkit.core.errors import DermkitError, InputError
from dermkit.data.importers.csv_files import CsvColumns
from dermkit.data.table import Case
from dermkit.ontology import Ontology, UnknownTermError, default_ontology

IMPORTERS: dict[str, type[Importer]] = {}

ON_ERROR_CHOICES = ("raise", "skip")


def register_importer(cls: type[Importer]) -> type[Importer]:
    """Class decorator: make an importer available by its ``name`` (CLI and :func:`get_importer`)."""
    if cls.name in IMPORTERS:
        raise ValueError(f"importer {cls.name!r} registered twice")
    IMPORTERS[cls.name] = cls
    return cls


def get_importer(name: str) -> type[Importer]:
    if name not in IMPORTERS:
        close = difflib.get_close_matches(name, list(IMPORTERS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DermkitError(f"unknown source {name!r}{hint}; known: {', '.join(sorted(IMPORTERS))}")
    return IMPORTERS[name]


@dataclass
class ImportContext:
    """State of one import run: error policy, collected problems, the ontology."""

    on_error: str = "raise"
    ontology: Ontology = field(default_factory=default_ontology)
    problems: list[dict[str, Any]] = field(default_factory=list)
    # Keyed by object identity: run_import keeps every yielded case alive until the table is written.
    origins: dict[int, Origin] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR_CHOICES:
            raise DermkitError(f"on_error must be one of {ON_ERROR_CHOICES}, got {self.on_error!r}")

    def reject(self, error: InputError) -> None:
        """Raise ``error``, or record it and let the caller skip the row under ``--on-error skip``."""
        if self.on_error == "raise":
            raise error
        self.problems.append(error.as_record())

    def locate(self, case: Case, where: Where, id_field: str, image_field: str | None = None) -> Case:
        """Remember the row and columns ``case`` came from and return it (``yield context.locate(...)``).

        Duplicate ids and bad images are only found after reading; this lets those errors name
        the source row and column instead of just the dataset's path.
        """
        self.origins[id(case)] = Origin(where, id_field, image_field or id_field)
        return case

    def error_about(self, case: Case, message: str, *, image: bool, fallback: Path) -> InputError:
        """An error about ``case`` at its recorded origin (or at ``fallback`` for unlocated cases)."""
        origin = self.origins.get(id(case))
        text = f"case {case.case_id}: {message}"
        if origin is None:
            return InputError(text, file=fallback, field="image_paths" if image else "case_id")
        return origin.where.error(origin.image_field if image else origin.id_field, text)


class Importer(ABC):
    """Reads one source's released layout into cases."""

    name: ClassVar[str]
    licence: ClassVar[str | None] = None
    acquisition: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    # Every CSV column it reads, by file (read_csv checks them up front and rows hold only these);
    # empty for a source whose columns come from its options or that has no CSV.
    csv_columns: ClassVar[Mapping[str, CsvColumns]] = {}

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.options = dict(options or {})

    @abstractmethod
    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        """Yield the cases found at ``path``; report bad rows through ``context.reject``."""

    def map_label(self, code: str, context: ImportContext, *, file: Path, row: int, field_name: str) -> str:
        try:
            return context.ontology.map_label(self.name, code)
        except UnknownTermError as exc:
            raise InputError(str(exc), file=file, row=row, field=field_name) from exc


@dataclass(frozen=True)
class Where:
    """Location of a value, so a parser error can name it."""

    file: Path
    row: int

    def error(self, field_name: str, message: str) -> InputError:
        return InputError(message, file=self.file, row=self.row, field=field_name)


@dataclass(frozen=True)
class Origin:
    """Where a case was read from: its row, the column of its id and the column naming its image."""

    where: Where
    id_field: str
    image_field: str


def checked_label_source(options: Mapping[str, str], context: ImportContext, default: str) -> str:
    """The ``label_source`` option (whose code table maps labels), refusing a table that does not exist.

    Without the check a misspelt source would silently fall back to plain condition names.
    """
    if "label_source" not in options:
        return default
    if options["label_source"] not in context.ontology.mappings:
        raise InputError(f"no label table {options['label_source']!r} in the ontology; known: "
                         f"{', '.join(sorted(context.ontology.mappings))}", field="label_source")
    return options["label_source"]
