"""Exports: the SCIN release layout (re-importable with dermkit's ``scin`` importer) and a case table.

SCIN flattens all dermatologists' conditions of a case into one list, and the ``scin`` importer
rebuilds the graders from where the list must cross a boundary (a repeated name, a rising
confidence, a fourth condition; see ``docs/importers.md``). :func:`scin_order` lists the graders
and their conditions in an order for which that rebuild returns exactly the real graders.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from itertools import permutations, product
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dermkit.collect import questionnaire as q
from dermkit.collect.labels import case_labels, submitted
from dermkit.collect.models import ContributedCase, GradeRecord
from dermkit.collect.storage import MediaStore
from dermkit.core.atomic import atomic_dir
from dermkit.core.errors import DermkitError, InputError
from dermkit.data.aggregate import Grade, aggregate_differential
from dermkit.data.importers.scin import split_graders
from dermkit.data.table import Case, write_table
from dermkit.ontology import default_ontology

FORMATS = ("scin", "dermkit")
SOURCE = "collect"
IMAGES_DIR = "images"
TABLE_DIR = "table"
CASES_FILE = "scin_cases.csv"
LABELS_FILE = "scin_labels.csv"
GRADER_SLOTS = (1, 2, 3)  # also the image slots: SCIN has three of each
YES_QUALITY = "DEFAULT_YES_IMAGE_QUALITY_SUFFICIENT"
NO_QUALITY = "NO_IMAGE_QUALITY_INSUFFICIENT"

Answer = list[tuple[str, int]]  # one dermatologist's (condition name, confidence) pairs


@dataclass(frozen=True)
class ExportSummary:
    out_dir: Path
    cases: int
    images: int


# -- the grader order of the SCIN label lists ---------------------------------------------------

def _tie_orders(answer: Answer) -> Iterator[Answer]:
    """The answer most confident first, in every order of its equally confident conditions."""
    levels = sorted({c for _, c in answer}, reverse=True)
    groups = [[pair for pair in answer if pair[1] == level] for level in levels]
    for choice in product(*(permutations(group) for group in groups)):
        yield [pair for group in choice for pair in group]


def _flatten(answers: Sequence[Answer]) -> tuple[list[str], list[int]]:
    return [n for a in answers for n, _ in a], [c for a in answers for _, c in a]


def _as_grades(answers: Sequence[Answer]) -> list[Grade]:
    return [Grade([n for n, _ in a], [c for _, c in a]) for a in answers]


def scin_order(answers: Sequence[Answer]) -> list[tuple[int, Answer]]:
    """The gradable dermatologists' answers, as ``(index in answers, arranged answer)``, in an order
    the ``scin`` importer splits back exactly.

    Tries every order of graders and of equally confident conditions (at most 3 graders of 3
    conditions). When no order makes every boundary visible (graders that all share one confidence
    level, e.g. ``[A 5]`` and ``[B 5]``), the merged reading has the same inverse-rank weights, so
    an order with the same aggregate is used; if even that were impossible the export refuses the
    case rather than write labels that re-import differently.
    """
    if len(answers) <= 1:  # the importer does not split a single gradable grader's list
        return [(i, next(_tie_orders(a))) for i, a in enumerate(answers)]
    truth = aggregate_differential(_as_grades(answers))
    same_weights = None
    for indices in permutations(range(len(answers))):
        for arranged in product(*(_tie_orders(answers[i]) for i in indices)):
            rebuilt = split_graders(*_flatten(arranged))
            if rebuilt == _as_grades(arranged):
                return list(zip(indices, arranged))
            if same_weights is None and aggregate_differential(rebuilt) == truth:
                same_weights = list(zip(indices, arranged))
    if same_weights is None:
        raise DermkitError(f"these answers cannot be written as SCIN label lists: {answers}")
    return same_weights


# -- reading the database -------------------------------------------------------------------------

def _cases(session: Session) -> list[ContributedCase]:
    query = (select(ContributedCase).order_by(ContributedCase.submitted_at, ContributedCase.id)
             .options(selectinload(ContributedCase.images),
                      selectinload(ContributedCase.grades).selectinload(GradeRecord.conditions)))
    return list(session.scalars(query))


def answers_of(case: ContributedCase) -> q.Answers:
    return q.Answers(**{f.name: getattr(case, f.name) for f in fields(q.Answers)})


def _image_name(case: ContributedCase, position: int) -> str:
    return f"{case.id}_{position}{Path(case.images[position - 1].file_name).suffix}"


def _copy_images(case: ContributedCase, store: MediaStore, folder: Path) -> list[str]:
    names = []
    for image in case.images:
        source = store.path(image.file_name)
        if not source.is_file():
            raise InputError(f"photo {image.file_name} of case {case.id} is not in the media folder {store.root} "
                             "(is --media the server's?)", field="media")
        names.append(_image_name(case, image.position))
        shutil.copyfile(source, folder / names[-1])
    return names


# -- SCIN layout ----------------------------------------------------------------------------------

def _flags(prefix: str, choices: dict[str, str], chosen: Sequence[str]) -> dict[str, str]:
    return {f"{prefix}{code}": "YES" if code in chosen else "" for code in choices}


def scin_case_row(case: ContributedCase, image_names: Sequence[str]) -> dict[str, str]:
    answers = answers_of(case)
    row = {"case_id": case.id, "source": "dermkit-collect", "release": "", "year": str(case.submitted_at.year),
           **{name: getattr(answers, name) or "" for name in q.SINGLE_CHOICES},
           **_flags("race_ethnicity_", q.RACES, answers.race_ethnicity),
           "combined_race": q.combined_race(answers.race_ethnicity) or "",
           **_flags("textures_", q.TEXTURES, answers.textures),
           **_flags("body_parts_", q.BODY_PARTS, answers.body_parts),
           **_flags("condition_symptoms_", q.CONDITION_SYMPTOMS, answers.condition_symptoms),
           **_flags("other_symptoms_", q.OTHER_SYMPTOMS, answers.other_symptoms),
           "consent_version": case.consent_version}
    for slot in GRADER_SLOTS:
        image = case.images[slot - 1] if slot <= len(case.images) else None
        row[f"image_{slot}_path"] = f"{IMAGES_DIR}/{image_names[slot - 1]}" if image else ""
        row[f"image_{slot}_shot_type"] = (image.shot_type or "") if image else ""
    return row


def scin_label_row(case: ContributedCase) -> dict[str, str] | None:
    """The labels row, or None for a case nobody has graded yet."""
    dermatologists = submitted(case, "dermatologist")
    lay = submitted(case, "lay_grader")
    if not dermatologists and not lay:
        return None
    names = default_ontology().conditions
    gradable = [g for g in dermatologists if g.gradable]
    ordered = scin_order([[(names.get(c.condition_id).name, c.confidence) for c in g.conditions]
                          for g in gradable])
    # Grader slots follow the lists: gradable graders as arranged, then those who could not grade.
    slots = [gradable[i] for i, _ in ordered] + [g for g in dermatologists if not g.gradable]
    labels = case_labels(case)
    weighted = ({names.get(c).name: round(w, 4) for c, w in labels.differential.items()}
                if labels.differential else None)
    flat_names, flat_confidences = _flatten([answer for _, answer in ordered])
    row = {"case_id": case.id, "dermatologist_skin_condition_on_label_name": repr(flat_names),
           "dermatologist_skin_condition_confidence": repr(flat_confidences),
           "weighted_skin_condition_label": "" if weighted is None else repr(weighted)}
    for slot in GRADER_SLOTS:
        grade = slots[slot - 1] if slot <= len(slots) else None
        row[f"dermatologist_gradable_for_skin_condition_{slot}"] = (
            "" if grade is None else YES_QUALITY if grade.gradable else NO_QUALITY)
        row[f"dermatologist_gradable_for_fitzpatrick_skin_type_{slot}"] = (
            "" if grade is None else "YES" if grade.fitzpatrick is not None else "NO")
        row[f"dermatologist_fitzpatrick_skin_type_label_{slot}"] = (
            f"FST{grade.fitzpatrick}" if grade is not None and grade.fitzpatrick is not None else "")
    row.update({"gradable_for_monk_skin_tone_india": "", "monk_skin_tone_label_india": "",
                "gradable_for_monk_skin_tone_us": str(labels.monk is not None) if lay else "",
                "monk_skin_tone_label_us": "" if labels.monk is None else str(labels.monk)})
    return row


def _write_csv(path: Path, records: list[dict[str, str]], columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)


def export_scin(session: Session, store: MediaStore, out_dir: str | Path) -> ExportSummary:
    """``scin_cases.csv``, ``scin_labels.csv`` and ``images/``, written atomically."""
    cases = _cases(session)
    out_dir = Path(out_dir)
    images = 0
    with atomic_dir(out_dir) as tmp:
        (tmp / IMAGES_DIR).mkdir()
        case_rows, label_rows = [], []
        for case in cases:
            names = _copy_images(case, store, tmp / IMAGES_DIR)
            images += len(names)
            case_rows.append(scin_case_row(case, names))
            label = scin_label_row(case)
            if label is not None:
                label_rows.append(label)
        _write_csv(tmp / CASES_FILE, case_rows, CASE_COLUMNS)
        _write_csv(tmp / LABELS_FILE, label_rows, LABEL_COLUMNS)
    return ExportSummary(out_dir, len(cases), images)


CASE_COLUMNS = [
    "case_id", "source", "release", "year", *q.SINGLE_CHOICES,
    *(f"race_ethnicity_{code}" for code in q.RACES), "combined_race",
    *(f"textures_{code}" for code in q.TEXTURES), *(f"body_parts_{code}" for code in q.BODY_PARTS),
    *(f"condition_symptoms_{code}" for code in q.CONDITION_SYMPTOMS),
    *(f"other_symptoms_{code}" for code in q.OTHER_SYMPTOMS), "consent_version",
    *(f"image_{s}_path" for s in GRADER_SLOTS), *(f"image_{s}_shot_type" for s in GRADER_SLOTS),
]
LABEL_COLUMNS = [
    "case_id", *(f"dermatologist_gradable_for_skin_condition_{s}" for s in GRADER_SLOTS),
    "dermatologist_skin_condition_on_label_name", "dermatologist_skin_condition_confidence",
    "weighted_skin_condition_label",
    *(f"dermatologist_gradable_for_fitzpatrick_skin_type_{s}" for s in GRADER_SLOTS),
    *(f"dermatologist_fitzpatrick_skin_type_label_{s}" for s in GRADER_SLOTS),
    "gradable_for_monk_skin_tone_india", "gradable_for_monk_skin_tone_us",
    "monk_skin_tone_label_india", "monk_skin_tone_label_us",
]


# -- dermkit case table ---------------------------------------------------------------------------

def to_case(case: ContributedCase, image_paths: list[str]) -> Case:
    """The case-table row: the same values the ``scin`` importer reads from the SCIN export."""
    answers = answers_of(case)
    labels = case_labels(case)
    conditions = default_ontology().conditions
    sites = q.body_site_ids(answers.body_parts)
    extra: dict[str, Any] = {
        "age_group": q.answered(answers.age_group),
        "sex_at_birth": answers.sex_at_birth,
        "self_reported_fitzpatrick": q.fitzpatrick_number(answers.fitzpatrick_skin_type),
        "body_sites": sites,
        "textures": list(answers.textures),
        "race_ethnicity": list(answers.race_ethnicity),
        "combined_race": q.combined_race(answers.race_ethnicity),
        "shot_types": [image.shot_type for image in case.images],
        "consent_version": case.consent_version,
        "dermatologist_grades": len(submitted(case, "dermatologist")),
        "lay_grades": len(submitted(case, "lay_grader")),
    }
    return Case(
        case_id=f"{SOURCE}:{case.id}", image_paths=image_paths, source=SOURCE,
        age=q.age_years(answers.age_group), sex=q.sex(answers.sex_at_birth),
        fitzpatrick=labels.fitzpatrick, monk=labels.monk, body_site=sites[0] if sites else None,
        symptoms=q.symptom_ids(answers), duration=q.duration_words(answers.condition_duration),
        diagnosis=None if labels.diagnosis_id is None else conditions.get(labels.diagnosis_id).name,
        diagnosis_id=labels.diagnosis_id, differential=labels.differential,
        patient_id=case.id, lesion_id=case.id, acquisition="clinical", date=case.submitted_at, extra=extra,
    )


def export_dermkit(session: Session, store: MediaStore, out_dir: str | Path) -> ExportSummary:
    """``images/`` and a case table in ``table/`` (``cases.parquet`` + ``manifest.json``)."""
    cases = _cases(session)
    if not cases:
        raise InputError("there are no cases to export (a case table needs at least one)", field="db")
    out_dir = Path(out_dir)
    final_images = out_dir.resolve() / IMAGES_DIR
    rows = []
    with atomic_dir(out_dir) as tmp:
        (tmp / IMAGES_DIR).mkdir()
        for case in cases:
            names = _copy_images(case, store, tmp / IMAGES_DIR)
            rows.append(to_case(case, [str(final_images / name) for name in names]))
        write_table(rows, tmp / TABLE_DIR, manifest={"source": SOURCE, "exported_by": "dermkit collect export"})
    return ExportSummary(out_dir, len(rows), sum(len(r.image_paths) for r in rows))


def export(session: Session, store: MediaStore, fmt: str, out_dir: str | Path) -> ExportSummary:
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {list(FORMATS)}", field="format")
    return (export_scin if fmt == "scin" else export_dermkit)(session, store, out_dir)
