"""What every importer shares: the registry, CSV reading with located errors, value parsers.

An importer is one module with one class that yields :class:`~dermkit.data.table.Case` rows;
:func:`run_import` does the rest (ontology mapping checks, duplicate ids, image checks, the
``--on-error skip`` report and the atomic write), so importers stay short and alike.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from tqdm.auto import tqdm

from dermkit.core.atomic import recover
from dermkit.core.errors import DermkitError, InputError
from dermkit.data.images import check_image
from dermkit.data.schema import check_split_name
from dermkit.data.table import Case, write_table
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


# -- CSV reading ------------------------------------------------------------------------------

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


# -- value parsers: empty means missing; anything else must parse or the row is rejected --------

MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "none", "null", "unknown", "unk", "-1"})


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


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


ROMAN_NUMERALS = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}
FITZPATRICK_PREFIX = re.compile(r"^(?:(?:fitzpatrick|skin|type|fst)[\s_-]*)+")


def locate_image(text: str, roots: Sequence[Path], where: Where, field_name: str) -> Path:
    """The image a CSV names (inside the images folder, :func:`image_name`), under the first root that holds it.

    Under each root the path is tried as written, then by file name alone, so images may be
    kept in the released sub-folders or all in one folder. When none exists the path under the
    first root is returned, for the image check of ``run_import`` to report with its row.
    """
    relative = image_name(text, where, field_name)
    candidates = [candidate for root in roots for candidate in (root / relative, root / relative.name)]
    return next((candidate for candidate in candidates if candidate.is_file()), candidates[0])


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


def parse_fitzpatrick(value: Any, where: Where, field_name: str) -> int | None:
    """Fitzpatrick type as 1–6, I–VI, ``FST3`` or ``type III``."""
    if is_missing(value):
        return None
    text = FITZPATRICK_PREFIX.sub("", str(value).strip().lower())
    if text in ROMAN_NUMERALS:
        return ROMAN_NUMERALS[text]
    try:
        return parse_int(text, where, field_name, 1, 6)
    except InputError:
        raise where.error(field_name, f"{value!r} is not a Fitzpatrick type (1–6, I–VI, FST1–FST6)") from None


def parse_float(value: Any, where: Where, field_name: str, low: float | None = None, high: float | None = None) -> float | None:
    if is_missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise where.error(field_name, f"{value!r} is not a number") from exc
    if math.isnan(number):
        return None
    if (low is not None and number < low) or (high is not None and number > high):
        raise where.error(field_name, f"{number} is outside {low}–{high}")
    return number


def parse_int(value: Any, where: Where, field_name: str, low: int | None = None, high: int | None = None) -> int | None:
    number = parse_float(value, where, field_name, low, high)
    if number is None:
        return None
    if number != int(number):
        raise where.error(field_name, f"{value!r} is not a whole number")
    return int(number)


_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


def parse_bool(value: Any, where: Where, field_name: str) -> bool | None:
    if is_missing(value):
        return None
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise where.error(field_name, f"{value!r} is not a yes/no value")


def parse_literal(value: Any, where: Where, field_name: str, expected: type | tuple[type, ...] = (list, dict)) -> Any:
    """Parse a Python-literal string such as ``"['a', 'b']"`` (SCIN's list and dict columns)."""
    if is_missing(value):
        return None
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError) as exc:
        raise where.error(field_name, f"malformed literal {str(value)[:80]!r}") from exc
    if not isinstance(parsed, expected):
        raise where.error(field_name, f"expected {expected}, got {type(parsed).__name__}")
    return parsed


SEX_WORDS = {
    "female": "female", "f": "female", "woman": "female", "girl": "female",
    "male": "male", "m": "male", "man": "male", "boy": "male",
    "other": "other", "other_or_unspecified": "other", "intersex": "other", "non_binary": "other",
}


def parse_sex(value: Any, where: Where, field_name: str) -> str | None:
    if is_missing(value):
        return None
    key = str(value).strip().lower().replace(" ", "_")
    if key not in SEX_WORDS:
        raise where.error(field_name, f"{value!r} is not a recognised sex")
    return SEX_WORDS[key]


def parse_body_site(value: Any, context: ImportContext, where: Where, field_name: str) -> str | None:
    if is_missing(value):
        return None
    node = context.ontology.body_sites.find(str(value))
    if node is None:
        suggestions = context.ontology.body_sites.suggest(str(value))
        hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
        raise where.error(field_name, f"unknown body site {value!r}{hint}")
    return node.id


# -- the whole run ------------------------------------------------------------------------------

def _check_images(cases: list[Case], context: ImportContext, workers: int = 4) -> list[Case]:
    """Decode every image once (in threads); drop or raise on missing, corrupt or oversized ones."""
    paths = sorted({p for case in cases for p in case.image_paths})

    def check(path: str) -> InputError | None:
        try:
            check_image(path)
        except InputError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(check, paths), total=len(paths), desc="checking images", unit="img", leave=False))
    bad = {path: error for path, error in zip(paths, results) if error is not None}
    kept = []
    for case in cases:
        errors = [bad[p] for p in case.image_paths if p in bad]
        if errors:
            error = errors[0]
            context.reject(context.error_about(case, f"image {error.file}: {error.message}", image=True,
                                               fallback=Path(str(error.file))))
            continue
        kept.append(case)
    return kept


def _drop_duplicates(cases: list[Case], context: ImportContext, origin: Path) -> list[Case]:
    seen: dict[str, Case] = {}
    kept = []
    for case in cases:
        first = seen.get(case.case_id)
        if first is not None:
            earlier = context.origins.get(id(first))
            at = f" (first at row {earlier.where.row})" if earlier else ""
            context.reject(context.error_about(case, f"duplicated case id{at}", image=False, fallback=origin))
            continue
        seen[case.case_id] = case
        kept.append(case)
    return kept


@dataclass
class ImportResult:
    out_dir: Path
    cases: int
    problems: list[dict[str, Any]]


def run_import(
    source: str,
    path: str | Path,
    out_dir: str | Path,
    *,
    on_error: str = "raise",
    options: Mapping[str, str] | None = None,
    check_images: bool = True,
    ontology: Ontology | None = None,
    progress: Callable[[str], None] | None = None,
    split: str | None = None,
) -> ImportResult:
    """Import ``path`` with the ``source`` importer and write a case table to ``out_dir``.

    Nothing is written unless the whole import succeeds (or, with ``on_error='skip'``, every
    rejected row is in ``import_report.json`` beside the table). ``split`` puts every case in that
    split: an external test set is imported with ``split="test"`` and needs no ``data split``.
    """
    check_split_name(split, "--split")
    recover(out_dir)  # a killed earlier write of this table is finished or undone even if this import fails
    importer = get_importer(source)(options)
    context = ImportContext(on_error=on_error, ontology=ontology or default_ontology())
    path = Path(path)
    if not path.exists():
        raise InputError("path not found", file=path)
    cases = []
    for case in importer.read(path, context):
        case.source = importer.name
        case.licence = case.licence or importer.licence
        case.acquisition = case.acquisition or importer.acquisition
        case.split = split or case.split
        cases.append(case)
    cases = _drop_duplicates(cases, context, path)
    if check_images:
        cases = _check_images(cases, context)
    if not cases:
        raise InputError(f"no usable cases found ({len(context.problems)} rejected)", file=path)
    manifest = {"source": importer.name, "imported_from": str(path.resolve()), "licence": importer.licence,
                "rejected": len(context.problems), "options": dict(options or {})}
    if split is not None:
        manifest["split"] = {"all": split}
    written = write_table(cases, out_dir, manifest=manifest, report=context.problems)
    return ImportResult(written, len(cases), context.problems)
