"""Expert partial rankings with ties (Stutz et al. 2023, the "dermatology ddx dataset"): labels only.

``dermatology_selectors.json`` holds one list of readers per case; each reader ranks conditions as
rank groups, best first, a group holding every condition tied at that rank; numbers index
``dermatology_conditions.txt`` (0-based). The release has no images, so each case keeps an
expected image path and the table is imported with ``--no-image-check`` (as Fitzpatrick 17k).
The differential is the inverse-rank aggregate with ties sharing a rank; the rules, and how names
the ontology does not know are kept, are in ``docs/importers.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermkit.core.errors import InputError
from dermkit.data.aggregate import Grade, aggregate_differential, top_condition
from dermkit.data.importers.base import ImportContext, Importer, register_importer
from dermkit.data.table import Case
from dermkit.ontology import Ontology, UnknownTermError

SELECTORS_FILE = "dermatology_selectors.json"
CONDITIONS_FILE = "dermatology_conditions.txt"
SOURCE = "dermatology-rankings"
# Where the differential keeps the weight of names the ontology does not know: the root outside
# every disease branch (ISIC's UNK goes there too), so it never counts as any diagnosis.
UNMAPPED_ID = "unknown_or_other"
_UNMAPPED_KEY = "unmapped:"  # never an ontology id (ids are slugs without a colon)

Ranking = list[list[int]]  # one reader: rank groups of condition indices, best first


@dataclass(frozen=True)
class RankingsRelease:
    """The release as read and checked: condition names and, per case, its readers' rankings
    (None for a case rejected under ``--on-error skip``, so positions, the case ids, stay)."""

    selectors: Path
    conditions: list[str]
    cases: list[list[Ranking] | None]


def release_files(path: Path) -> tuple[Path, Path]:
    """(selectors JSON, conditions list) of a release: PATH is the folder or the JSON beside the list."""
    selectors = path / SELECTORS_FILE if path.is_dir() else path
    conditions = selectors.parent / CONDITIONS_FILE
    for file in (selectors, conditions):
        if not file.is_file():
            raise InputError(f"no {file.name} here (the release's folder holds {SELECTORS_FILE} and "
                             f"{CONDITIONS_FILE})", file=file)
    return selectors, conditions


def read_conditions(path: Path) -> list[str]:
    """The condition names, one a line; a blank or repeated name is an error naming its line."""
    names = path.read_text(encoding="utf-8").splitlines()
    seen: dict[str, int] = {}
    for line, name in enumerate(names, start=1):
        if not name.strip():
            raise InputError("empty condition name", file=path, row=line)
        if name in seen:
            raise InputError(f"condition {name!r} repeats line {seen[name]}", file=path, row=line)
        seen[name] = line
    return names


def read_selectors(path: Path) -> Any:
    try:
        cases = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not readable JSON: {exc}", file=path) from exc
    if not isinstance(cases, list):
        raise InputError(f"expected a list of cases, got {type(cases).__name__}", file=path)
    return cases


def check_case(case: Any, number: int, n_conditions: int, file: Path) -> list[Ranking]:
    """One case's readers, checked: lists of non-empty rank groups of valid, unrepeated indices.

    Errors name the case, reader and rank group by their 0-based positions in the JSON.
    """
    def fail(where: str, message: str) -> InputError:
        return InputError(f"case {number}: {message}", file=file, field=where)

    if not isinstance(case, list):
        raise fail(f"case {number}", f"expected a list of readers, got {type(case).__name__}")
    for r, reader in enumerate(case):
        if not isinstance(reader, list):
            raise fail(f"case {number}, reader {r}", f"expected a list of rank groups, got {type(reader).__name__}")
        seen: set[int] = set()
        for g, group in enumerate(reader):
            where = f"case {number}, reader {r}, rank group {g}"
            if not isinstance(group, list) or not group:
                raise fail(where, f"a rank group is a non-empty list of condition indices, got {group!r}")
            for index in group:
                if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n_conditions:
                    raise fail(where, f"condition index {index!r} is not one of 0–{n_conditions - 1} "
                                      f"({CONDITIONS_FILE} has {n_conditions} names)")
                if index in seen:
                    raise fail(where, f"condition {index} is ranked twice by this reader")
                seen.add(index)
    return case


def read_release(path: Path, context: ImportContext | None = None) -> RankingsRelease:
    """Read and check a release; with a ``context`` a bad case is rejected (``--on-error``), else raised."""
    selectors, conditions_file = release_files(path)
    conditions = read_conditions(conditions_file)
    cases: list[list[Ranking] | None] = []
    for number, case in enumerate(read_selectors(selectors)):
        try:
            cases.append(check_case(case, number, len(conditions), selectors))
        except InputError as error:
            if context is None:
                raise
            context.reject(error)
            cases.append(None)
    return RankingsRelease(selectors, conditions, cases)


def map_conditions(names: Sequence[str], ontology: Ontology, source: str | None = SOURCE) -> dict[str, str | None]:
    """Each name's condition id (the source's code table, then names and synonyms; ``source=None``:
    names and synonyms only); None where the ontology does not know the name."""
    mapped: dict[str, str | None] = {}
    for name in names:
        try:
            mapped[name] = ontology.map_label(source, name) if source else ontology.conditions.get(name).id
        except UnknownTermError:
            mapped[name] = None
    return mapped


def reader_grades(case: Sequence[Ranking], conditions: Sequence[str]) -> list[Grade]:
    """Each reader's ranking as a grade by release names, ties kept as rank groups."""
    return [Grade.from_rank_groups([[conditions[i] for i in group] for group in reader]) for reader in case]


def fold_unmapped(differential: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(differential by condition id, weight per unmapped release name): unmapped names' weight goes
    to ``unknown_or_other``, so the differential still sums to 1 and no reader's mass is dropped."""
    ids: dict[str, float] = {}
    unmapped: dict[str, float] = {}
    for key, weight in differential.items():
        if key.startswith(_UNMAPPED_KEY):
            unmapped[key.removeprefix(_UNMAPPED_KEY)] = weight
            key = UNMAPPED_ID
        ids[key] = ids.get(key, 0.0) + weight
    return dict(sorted(ids.items(), key=lambda item: (-item[1], item[0]))), unmapped


@register_importer
class DermatologyRankingsImporter(Importer):
    """PATH is the release's folder (or its ``dermatology_selectors.json``); ``-o images=DIR`` sets
    where the (unreleased) images would be expected (default ``images/`` beside the JSON)."""

    name = SOURCE
    licence = "Apache-2.0"
    acquisition = "clinical"
    description = "teledermatology expert partial rankings with ties (Stutz et al. 2023), labels only"

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        release = read_release(path, context)
        ids = map_conditions(release.conditions, context.ontology, self.name)
        image_dir = Path(self.options.get("images", release.selectors.parent / "images"))
        for number, case in enumerate(release.cases):
            if case is not None:
                yield self._case(number, case, release.conditions, ids, image_dir)

    def _case(self, number: int, case: list[Ranking], conditions: Sequence[str],
              ids: Mapping[str, str | None], image_dir: Path) -> Case:
        grades = reader_grades(case, conditions)
        by_name = aggregate_differential(grades)
        by_key = aggregate_differential(grades, lambda name: ids[name] or f"{_UNMAPPED_KEY}{name}")
        differential, unmapped = fold_unmapped(by_key) if by_key else (None, {})
        top = top_condition(differential)
        diagnosis = None
        if by_name is not None:
            diagnosis = next(name for name in by_name if (ids[name] or UNMAPPED_ID) == top)
        return Case(
            case_id=f"{self.name}:{number}",
            image_paths=[str((image_dir / f"{number}.png").resolve())],
            source=self.name,
            diagnosis=diagnosis,
            diagnosis_id=top,
            differential=differential,
            extra={
                "readers": [[[conditions[i] for i in group] for group in reader] for reader in case],
                "release_differential": by_name,
                "unmapped": unmapped,
            },
        )
