"""A case's reference labels from its submitted grades (the same rules the scin importer applies).

- differential: the inverse-rank aggregate (:func:`dermkit.data.aggregate.aggregate_differential`)
  of the dermatologists who found the case gradable; None when none did.
- fitzpatrick: the lower median of the dermatologists' eFST estimates.
- monk: the lower median of the lay graders' Monk tones.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from dermkit.collect.models import ContributedCase, GradeRecord
from dermkit.data.aggregate import Grade, aggregate_differential, top_condition


@dataclass(frozen=True)
class CaseLabels:
    differential: dict[str, float] | None
    diagnosis_id: str | None
    fitzpatrick: int | None
    monk: int | None


def submitted(case: ContributedCase, kind: str) -> list[GradeRecord]:
    return [g for g in case.grades if g.kind == kind and g.submitted_at is not None]


def as_grade(record: GradeRecord) -> Grade:
    return Grade([c.condition_id for c in record.conditions], [c.confidence for c in record.conditions])


def case_labels(case: ContributedCase) -> CaseLabels:
    dermatologists = submitted(case, "dermatologist")
    differential = aggregate_differential(as_grade(g) for g in dermatologists if g.gradable)
    estimates = [g.fitzpatrick for g in dermatologists if g.fitzpatrick is not None]
    tones = [g.monk for g in submitted(case, "lay_grader") if g.monk is not None]
    return CaseLabels(
        differential=differential,
        diagnosis_id=top_condition(differential),
        fitzpatrick=statistics.median_low(estimates) if estimates else None,
        monk=statistics.median_low(tones) if tones else None,
    )
