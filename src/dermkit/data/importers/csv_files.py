"""Reading a source's CSV: the columns its importer declares, checked up front, and rows holding only those."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from dermkit.core.errors import InputError


@dataclass(frozen=True)
class CsvColumns:
    """Every column an importer reads from one CSV, declared so that the file is checked up front.

    ``required`` columns must be in the file (else an error naming them, before any row);
    ``optional`` ones and those starting with one of ``prefixes`` (flag families) may be absent,
    and read as empty. A row holds only these: reading any other column is an importer bug and
    raises :class:`UndeclaredColumnError`, so a column cannot be read without being declared.
    """

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def declares(self, column: str) -> bool:
        return column in self.required or column in self.optional or column.startswith(self.prefixes)


class UndeclaredColumnError(RuntimeError):
    """An importer read a column missing from its :class:`CsvColumns` (a bug, not bad input)."""


class Row(Mapping[str, str]):
    """One CSV row, holding only the declared columns; a declared column absent from the file reads as ``""``."""

    def __init__(self, record: dict[str, str], columns: CsvColumns) -> None:
        """``record`` holds the declared columns present in the file (:func:`rows` selects them once)."""
        self._record = record
        self._columns = columns

    def __getitem__(self, column: str) -> str:
        if column in self._record:
            return self._record[column]
        if self._columns.declares(column):
            return ""
        raise UndeclaredColumnError(f"column {column!r} is read but not declared in the importer's CsvColumns")

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)


@dataclass(frozen=True)
class SourceCsv:
    """A source's CSV, read as strings, with the columns its importer declared."""

    path: Path
    frame: pd.DataFrame
    declared: CsvColumns

    @property
    def columns(self) -> list[str]:
        """The columns in the file, in its order."""
        return [str(column) for column in self.frame.columns]


def read_csv(path: Path, columns: CsvColumns, **kwargs: Any) -> SourceCsv:
    """Read a CSV as strings, checking up front that every required column is there (with suggestions)."""
    if not path.exists():
        raise InputError("file not found", file=path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"not a readable CSV: {exc}", file=path) from exc
    present = [str(column) for column in frame.columns]
    missing = [column for column in columns.required if column not in present]
    if len(missing) == 1:
        raise InputError(f"required column is missing{misspelling_hint(missing[0], present)}", file=path,
                         field=missing[0])
    if missing:
        listed = ", ".join(column + misspelling_hint(column, present) for column in missing)
        raise InputError(f"required columns are missing: {listed}", file=path, field=",".join(missing))
    return SourceCsv(path, frame, columns)


def misspelling_hint(column: str, present: Sequence[str]) -> str:
    """`` (found 'Age': misspelt?)`` when the file has a column close to the one looked for."""
    close = difflib.get_close_matches(column, list(present), n=1)
    return f" (found {close[0]!r}: misspelt?)" if close else ""


def find_csv(path: Path, names: Sequence[str]) -> Path:
    """The table of a source: ``path`` itself, or the first of ``names`` (then the only CSV) in it.

    Releases rename their files (``metadata.csv`` vs ``HAM10000_metadata.csv``), so PATH may be
    the file or its folder.
    """
    if path.is_file():
        return path
    for name in names:
        if (path / name).exists():
            return path / name
    found = sorted(path.glob("*.csv"))
    if len(found) == 1:
        return found[0]
    wanted = " or ".join(names) or "single CSV"
    listed = f"; it holds {', '.join(p.name for p in found)}" if found else ""
    raise InputError(f"no {wanted} here (pass the CSV itself){listed}", file=path)


def rows(source: SourceCsv, description: str) -> Iterator[tuple[int, Row]]:
    """(1-based data row number, row of declared columns) with a progress bar."""
    kept = [column for column in source.columns if source.declared.declares(column)]
    records = source.frame[kept].to_dict(orient="records")
    for number, record in enumerate(tqdm(records, desc=description, unit="row", leave=False), start=1):
        yield number, Row(record, source.declared)
