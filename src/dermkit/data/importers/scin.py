"""SCIN (Ward et al. 2024): crowdsourced clinical photos, ``scin_cases.csv`` + ``scin_labels.csv``.

The release's list and dict columns are Python-literal strings, its yes/no columns hold "YES" or
nothing, and it flattens every grader's conditions into one list with one confidence each. How
grader answers are rebuilt from that list, and every other rule, is in ``docs/importers.md``.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from dermkit.core.errors import InputError
from dermkit.data.aggregate import Grade, aggregate_differential, top_condition
from dermkit.data.importers.base import ImportContext, Importer, Where, register_importer
from dermkit.data.importers.csv_files import CsvColumns, Row, SourceCsv, read_csv, rows
from dermkit.data.importers.image_paths import locate_image
from dermkit.data.importers.values import is_missing, parse_bool, parse_int, parse_literal, parse_sex
from dermkit.data.table import Case
from dermkit.ontology.normalize import normalize_term

CASES_FILE = "scin_cases.csv"
LABELS_FILE = "scin_labels.csv"
NAMES = "dermatologist_skin_condition_on_label_name"
CONFIDENCES = "dermatologist_skin_condition_confidence"
WEIGHTED = "weighted_skin_condition_label"
GRADERS = (1, 2, 3)
IMAGE_SLOTS = (1, 2, 3)
MAX_CONDITIONS_PER_GRADER = 3

# SCIN's own spellings of "no value", on top of the generic ones in values.MISSING_TOKENS.
SCIN_MISSING = frozenset({"age_unknown", "none_identified", "none_selected", "other_or_unspecified"})
FITZPATRICK = {f"fst{n}": n for n in range(1, 7)}
AGE_RANGE = re.compile(r"^AGE_(\d+)_TO_(\d+)$")
MONK_POOLS = ("us", "india")

SITE_FLAGS = "body_parts_"
SYMPTOM_FLAGS = ("condition_symptoms_", "other_symptoms_")
NO_SYMPTOM_SUFFIXES = ("no_relevant_experience", "no_relevant_symptoms")
TEXTURE_FLAGS = "textures_"
RACE_FLAGS = "race_ethnicity_"
CASE_COLUMNS = CsvColumns(
    required=("case_id", "image_1_path"),
    optional=(*(f"image_{slot}_path" for slot in IMAGE_SLOTS[1:]),
              *(f"image_{slot}_shot_type" for slot in IMAGE_SLOTS),
              "age_group", "sex_at_birth", "fitzpatrick_skin_type", "combined_race", "related_category",
              "condition_duration"),
    prefixes=(SITE_FLAGS, *SYMPTOM_FLAGS, TEXTURE_FLAGS, RACE_FLAGS),
)
LABEL_COLUMNS = CsvColumns(
    required=("case_id", NAMES, CONFIDENCES),
    optional=(WEIGHTED, *(f"monk_skin_tone_label_{pool}" for pool in MONK_POOLS),
              *(f"dermatologist_gradable_for_skin_condition_{g}" for g in GRADERS),
              *(f"dermatologist_fitzpatrick_skin_type_label_{g}" for g in GRADERS)),
)


def _missing(value: Any) -> bool:
    return is_missing(value) or str(value).strip().lower() in SCIN_MISSING


def parse_age_group(value: str, where: Where, field_name: str) -> float | None:
    """``AGE_30_TO_39`` → 34.5, the midpoint of the listed bounds; open or unknown groups → None."""
    if _missing(value) or value.strip().upper() == "AGE_80_OR_ABOVE":
        return None
    match = AGE_RANGE.match(value.strip().upper())
    if match is None:
        raise where.error(field_name, f"{value!r} is not a SCIN age group (AGE_18_TO_29, ...)")
    low, high = int(match.group(1)), int(match.group(2))
    return (low + high) / 2


def parse_fst(value: str, where: Where, field_name: str) -> int | None:
    """``FST1``..``FST6`` → 1..6."""
    if _missing(value):
        return None
    key = value.strip().lower()
    if key not in FITZPATRICK:
        raise where.error(field_name, f"{value!r} is not FST1..FST6")
    return FITZPATRICK[key]


def parse_gradable(value: str, where: Where, field_name: str) -> bool | None:
    """``DEFAULT_YES_IMAGE_QUALITY_SUFFICIENT`` → True, ``NO_IMAGE_QUALITY_INSUFFICIENT`` → False."""
    if _missing(value):
        return None
    text = value.strip().upper().removeprefix("DEFAULT_")
    if text.startswith("YES") or text == "TRUE":
        return True
    if text.startswith("NO") or text == "FALSE":
        return False
    raise where.error(field_name, f"{value!r} is not a gradability answer (YES_... or NO_...)")


def split_graders(names: Sequence[str], confidences: Sequence[int | float]) -> list[Grade]:
    """Rebuild the graders' answers from SCIN's flattened lists (graders follow one another).

    A new answer starts where the flattened list must have crossed a grader boundary: the name
    is already in the current answer (a grader names a condition once), the confidence rises
    (a grader lists the most confident condition first), or the current answer already holds
    three conditions (a grader gives at most three).
    """
    grades: list[Grade] = []
    current: list[tuple[str, int | float]] = []
    for name, confidence in zip(names, confidences, strict=True):
        boundary = current and (
            normalize_term(name) in {normalize_term(n) for n, _ in current}
            or confidence > current[-1][1]
            or len(current) == MAX_CONDITIONS_PER_GRADER
        )
        if boundary:
            grades.append(Grade([n for n, _ in current], [c for _, c in current]))
            current = []
        current.append((name, confidence))
    if current:
        grades.append(Grade([n for n, _ in current], [c for _, c in current]))
    return grades


def _flagged(row: Mapping[str, str], columns: Sequence[str], where: Where) -> list[str]:
    """The flag columns set to YES, in the release's column order."""
    return [column for column in columns if parse_bool(row[column], where, column)]


def _flag_columns(source: SourceCsv, prefixes: str | tuple[str, ...]) -> list[str]:
    return [column for column in source.columns if column.startswith(prefixes)]


@register_importer
class SCINImporter(Importer):
    """PATH is the folder holding ``scin_cases.csv`` and ``scin_labels.csv``.

    Options: ``images=DIR`` (where the CSV's image paths are relative to) and
    ``monk_pool=us|india`` (which lay-grader pool gives ``monk``; default ``us``).
    """

    name = "scin"
    licence = "SCIN Data Use License"
    acquisition = "clinical"
    description = "SCIN crowdsourced clinical photos with dermatologist differentials"
    csv_columns: ClassVar[dict[str, CsvColumns]] = {CASES_FILE: CASE_COLUMNS, LABELS_FILE: LABEL_COLUMNS}

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        folder = path if path.is_dir() else path.parent
        monk_pool = self.options.get("monk_pool", "us")
        if monk_pool not in MONK_POOLS:
            raise InputError(f"monk_pool must be one of {MONK_POOLS}, got {monk_pool!r}", field="monk_pool")
        roots = [Path(self.options["images"])] if "images" in self.options else [folder, folder.parent]
        cases_csv, labels_csv = folder / CASES_FILE, folder / LABELS_FILE
        cases = read_csv(cases_csv, CASE_COLUMNS)
        labels = self._labels_by_case(labels_csv, context)
        columns = {
            "sites": _flag_columns(cases, SITE_FLAGS),
            "symptoms": _flag_columns(cases, SYMPTOM_FLAGS),
            "textures": _flag_columns(cases, TEXTURE_FLAGS),
            "race": _flag_columns(cases, RACE_FLAGS),
        }
        for number, row in rows(cases, "scin"):
            where = Where(cases_csv, number)
            try:
                label_where, label_row = labels.get(row["case_id"], (None, None))
                case = self._case(row, where, label_row, label_where, columns, roots, monk_pool, context)
                yield context.locate(case, where, "case_id", "image_1_path")
            except InputError as error:
                context.reject(error)

    def _labels_by_case(self, labels_csv: Path, context: ImportContext) -> dict[str, tuple[Where, Row]]:
        labels = read_csv(labels_csv, LABEL_COLUMNS)
        by_case: dict[str, tuple[Where, Row]] = {}
        for number, row in rows(labels, "scin labels"):
            where = Where(labels_csv, number)
            if row["case_id"] in by_case:
                context.reject(where.error("case_id", f"case {row['case_id']} is labelled twice"))
                continue
            by_case[row["case_id"]] = (where, row)
        return by_case

    def _case(
        self,
        row: Row,
        where: Where,
        label_row: Row | None,
        label_where: Where | None,
        columns: Mapping[str, list[str]],
        roots: list[Path],
        monk_pool: str,
        context: ImportContext,
    ) -> Case:
        slots = [slot for slot in IMAGE_SLOTS if not _missing(row.get(f"image_{slot}_path", ""))]
        if not slots:
            raise where.error("image_1_path", "the case has no image")
        sites = [self._site(column, context, where) for column in _flagged(row, columns["sites"], where)]
        differential, diagnosis = (None, None)
        extra: dict[str, Any] = {
            "age_group": None if _missing(row.get("age_group", "")) else row["age_group"],
            "sex_at_birth": row.get("sex_at_birth") or None,
            "self_reported_fitzpatrick": parse_fst(row.get("fitzpatrick_skin_type", ""), where,
                                                   "fitzpatrick_skin_type"),
            "body_sites": sites,
            "textures": [c.removeprefix(TEXTURE_FLAGS) for c in _flagged(row, columns["textures"], where)],
            "race_ethnicity": [c.removeprefix(RACE_FLAGS) for c in _flagged(row, columns["race"], where)],
            "combined_race": row.get("combined_race") or None,
            "related_category": row.get("related_category") or None,
            "shot_types": [row.get(f"image_{slot}_shot_type") or None for slot in slots],
        }
        fitzpatrick = monk = None
        if label_row is not None and label_where is not None:
            differential, diagnosis = self._differential(label_row, label_where, context)
            fitzpatrick = self._fitzpatrick(label_row, label_where)
            monk = parse_int(label_row.get(f"monk_skin_tone_label_{monk_pool}", ""), label_where,
                             f"monk_skin_tone_label_{monk_pool}", 1, 10)
            extra.update({
                WEIGHTED: parse_literal(label_row.get(WEIGHTED, ""), label_where, WEIGHTED, dict),
                "monk_us": label_row.get("monk_skin_tone_label_us") or None,
                "monk_india": label_row.get("monk_skin_tone_label_india") or None,
            })
        return Case(
            case_id=f"scin:{row['case_id']}",
            image_paths=[str(locate_image(row[f"image_{slot}_path"], roots, where, f"image_{slot}_path").resolve())
                         for slot in slots],
            source=self.name,
            age=parse_age_group(row.get("age_group", ""), where, "age_group"),
            sex=None if _missing(row.get("sex_at_birth", "")) else parse_sex(row["sex_at_birth"], where,
                                                                              "sex_at_birth"),
            fitzpatrick=fitzpatrick,
            monk=monk,
            body_site=sites[0] if sites else None,
            symptoms=self._symptoms(row, columns["symptoms"], where, context),
            duration=self._duration(row.get("condition_duration", "")),
            diagnosis=diagnosis,
            diagnosis_id=top_condition(differential),
            differential=differential,
            extra=extra,
        )

    def _differential(
        self, label_row: Mapping[str, str], where: Where, context: ImportContext
    ) -> tuple[dict[str, float] | None, str | None]:
        """The inverse-rank differential of the graders' answers; None when no grader could grade."""
        names = parse_literal(label_row[NAMES], where, NAMES, list) or []
        confidences = parse_literal(label_row[CONFIDENCES], where, CONFIDENCES, list) or []
        if len(names) != len(confidences):
            raise where.error(CONFIDENCES, f"{len(confidences)} confidences for {len(names)} condition names")
        if not all(isinstance(c, (int, float)) and 1 <= c <= 5 for c in confidences):
            raise where.error(CONFIDENCES, f"confidences must be numbers 1–5, got {confidences}")
        gradable = [
            parse_gradable(label_row.get(f"dermatologist_gradable_for_skin_condition_{g}", ""), where,
                           f"dermatologist_gradable_for_skin_condition_{g}")
            for g in GRADERS
        ]
        answered = [g for g in gradable if g is not None]
        if not names or (answered and not any(answered)):
            return None, None
        ids = {name: self.map_label(str(name), context, file=where.file, row=where.row, field_name=NAMES)
               for name in names}
        # Only graders who found the case gradable name conditions: with one such grader there is
        # nothing to split (and most SCIN cases have a single dermatologist).
        one_grader = sum(answer is True for answer in gradable) == 1
        grades = [Grade(names, confidences)] if one_grader else split_graders([str(n) for n in names], confidences)
        differential = aggregate_differential(grades, ids.__getitem__)
        top = top_condition(differential)
        return differential, next(name for name in names if ids[name] == top)

    @staticmethod
    def _fitzpatrick(label_row: Mapping[str, str], where: Where) -> int | None:
        """The dermatologists' estimate: the lower median of the graders who gave one."""
        estimates = [
            parse_fst(label_row.get(f"dermatologist_fitzpatrick_skin_type_label_{g}", ""), where,
                      f"dermatologist_fitzpatrick_skin_type_label_{g}")
            for g in GRADERS
        ]
        given = [e for e in estimates if e is not None]
        return statistics.median_low(given) if given else None

    @staticmethod
    def _site(column: str, context: ImportContext, where: Where) -> str:
        node = context.ontology.body_sites.find(column.removeprefix(SITE_FLAGS).replace("_", " "))
        if node is None:
            raise where.error(column, "this body-part flag has no body site in the ontology")
        return node.id

    @staticmethod
    def _symptoms(
        row: Mapping[str, str], columns: Sequence[str], where: Where, context: ImportContext
    ) -> list[str] | None:
        """Symptom ids of the YES flags; [] when the user said none; None when nothing was answered."""
        flagged = _flagged(row, columns, where)
        if not flagged:
            return None
        symptoms = []
        for column in flagged:
            suffix = column.split("_symptoms_", 1)[1]
            if suffix in NO_SYMPTOM_SUFFIXES:
                continue
            node = context.ontology.symptoms.find(suffix.replace("_", " "))
            if node is None:
                raise where.error(column, "this symptom flag has no symptom in the ontology")
            symptoms.append(node.id)
        return symptoms

    @staticmethod
    def _duration(value: str) -> str | None:
        """``ONE_TO_FOUR_WEEKS`` → ``one to four weeks``."""
        return None if _missing(value) else value.strip().lower().replace("_", " ")
