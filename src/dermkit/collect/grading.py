"""The grading queue and grade submission.

A grader asks for the next case; it is assigned (a ``grades`` row with no ``submitted_at``) when
it still has fewer than the configured number of grades of the grader's kind, counting open
assignments, and never to a grader who already has it. An assignment not submitted within
:data:`ASSIGNMENT_TIMEOUT` lapses and frees its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from dermkit.collect.models import ContributedCase, GradeCondition, GradeRecord, utcnow
from dermkit.collect.parsing import whole_number
from dermkit.core.errors import InputError
from dermkit.ontology import default_ontology

ASSIGNMENT_TIMEOUT = timedelta(hours=2)
MAX_CONDITIONS = 3
CONFIDENCES = range(1, 6)
MONK_TONES = range(1, 11)
FITZPATRICK_TYPES = range(1, 7)


@dataclass(frozen=True)
class GradesNeeded:
    """How many grades of each kind a case collects (SCIN: up to 3 dermatologists)."""

    dermatologist: int = 3
    lay_grader: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.dermatologist <= 3:
            raise InputError("a case takes 1–3 dermatologist grades (SCIN's export has 3 slots)",
                             field="dermatologist_grades")
        if self.lay_grader < 1:
            raise InputError("a case takes at least 1 lay grade", field="lay_grades")

    def of(self, kind: str) -> int:
        return self.dermatologist if kind == "dermatologist" else self.lay_grader


def _live() -> ColumnElement[bool]:
    """Grades that count toward a case's quota: submitted, or assigned recently."""
    return or_(GradeRecord.submitted_at.is_not(None), GradeRecord.assigned_at >= utcnow() - ASSIGNMENT_TIMEOUT)


def _lapse(session: Session) -> None:
    session.execute(delete(GradeRecord).where(GradeRecord.submitted_at.is_(None),
                                              GradeRecord.assigned_at < utcnow() - ASSIGNMENT_TIMEOUT))


def _open_cases(grader_id: int, kind: str, needed: int) -> Select[str]:
    """Cases that still need a ``kind`` grade and that ``grader_id`` has never had, oldest first."""
    counted = (select(func.count()).select_from(GradeRecord)
               .where(GradeRecord.case_id == ContributedCase.id, GradeRecord.kind == kind,
                      _live()).scalar_subquery())
    mine = exists().where(and_(GradeRecord.case_id == ContributedCase.id, GradeRecord.grader_id == grader_id))
    return (select(ContributedCase.id).where(counted < needed, ~mine)
            .order_by(ContributedCase.submitted_at, ContributedCase.id))


def queue_length(session: Session, grader_id: int, kind: str, needed: GradesNeeded) -> int:
    query = _open_cases(grader_id, kind, needed.of(kind))
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def next_assignment(session: Session, grader_id: int, kind: str, needed: GradesNeeded) -> GradeRecord | None:
    """The grader's open assignment, else a newly assigned case, else None when the queue is empty."""
    _lapse(session)
    current = session.scalar(select(GradeRecord).where(
        GradeRecord.grader_id == grader_id, GradeRecord.submitted_at.is_(None)).order_by(GradeRecord.id))
    if current is not None:
        session.commit()
        return current
    for case_id in session.scalars(_open_cases(grader_id, kind, needed.of(kind)).limit(20)):
        # Lock the case (PostgreSQL) and recount, so two graders cannot both take its last place.
        session.get(ContributedCase, case_id, with_for_update=True)
        still_open = session.scalar(_open_cases(grader_id, kind, needed.of(kind))
                                    .where(ContributedCase.id == case_id))
        if still_open is None:
            continue
        record = GradeRecord(case_id=case_id, grader_id=grader_id, kind=kind)
        session.add(record)
        session.commit()
        return record
    session.commit()
    return None


def assignment(session: Session, grade_id: int, grader_id: int) -> GradeRecord | None:
    """The grader's own open, unexpired assignment ``grade_id``; None for anyone else's or a lapsed one."""
    record = session.get(GradeRecord, grade_id)
    if record is None or record.grader_id != grader_id or record.submitted_at is not None:
        return None
    if record.assigned_at < utcnow() - ASSIGNMENT_TIMEOUT:
        return None
    return record


@dataclass(frozen=True)
class DermatologistAnswer:
    gradable: bool
    conditions: Sequence[tuple[str, int]]  # (condition id, confidence 1–5), in the order given
    fitzpatrick: int | None


def parse_dermatologist_answer(gradable: str | None, names: Sequence[str | None],
                               confidences: Sequence[str | None], fitzpatrick: str | None) -> DermatologistAnswer:
    """Validate the form: conditions resolve through the ontology's names and synonyms."""
    if gradable not in ("yes", "no"):
        raise InputError("say whether the photos are good enough to grade (yes or no)", field="gradable")
    conditions_ = default_ontology().conditions
    chosen: list[tuple[str, int]] = []
    for slot, (name, confidence) in enumerate(zip(names, confidences, strict=True), start=1):
        if name is None or not name.strip():
            continue
        node = conditions_.find(name)
        if node is None:
            suggestions = conditions_.suggest(name)
            hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
            raise InputError(f"unknown condition {name!r}{hint}", field=f"condition_{slot}")
        value = _int_in(confidence, CONFIDENCES, f"confidence_{slot}")
        if value is None:
            raise InputError("give a confidence 1–5 for each condition", field=f"confidence_{slot}")
        if node.id in {c for c, _ in chosen}:
            raise InputError(f"{node.name} is given twice", field=f"condition_{slot}")
        chosen.append((node.id, value))
    if gradable == "yes" and not chosen:
        raise InputError("a gradable case needs at least one condition", field="condition_1")
    if gradable == "no" and chosen:
        raise InputError("a case that cannot be graded takes no conditions", field="condition_1")
    if len(chosen) > MAX_CONDITIONS:
        raise InputError(f"at most {MAX_CONDITIONS} conditions", field="condition_4")
    return DermatologistAnswer(gradable == "yes", chosen, _int_in(fitzpatrick, FITZPATRICK_TYPES, "fitzpatrick"))


def parse_monk(value: str | None) -> int | None:
    """A Monk tone 1–10, or None for "cannot tell" (``none``)."""
    if value == "none":
        return None
    tone = _int_in(value, MONK_TONES, "monk")
    if tone is None:
        raise InputError("choose a Monk tone 1–10, or 'cannot tell'", field="monk")
    return tone


def _int_in(value: str | None, allowed: range, field_name: str) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    number = whole_number(text, field_name)
    if number not in allowed:
        raise InputError(f"{text!r} is not one of {allowed.start}–{allowed.stop - 1}", field=field_name)
    return number


def submit_dermatologist(session: Session, record: GradeRecord, answer: DermatologistAnswer) -> None:
    record.gradable = answer.gradable
    record.fitzpatrick = answer.fitzpatrick
    record.conditions = [GradeCondition(position=position, condition_id=condition, confidence=confidence)
                         for position, (condition, confidence) in enumerate(answer.conditions, start=1)]
    record.submitted_at = utcnow()
    session.commit()


def submit_lay(session: Session, record: GradeRecord, monk: int | None) -> None:
    record.gradable = monk is not None
    record.monk = monk
    record.submitted_at = utcnow()
    session.commit()
