"""The admin dashboard: what has been collected and how well it represents skin types, with plots."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dermkit.collect import questionnaire as q
from dermkit.collect.labels import case_labels, submitted
from dermkit.collect.models import ContributedCase, GradeRecord
from dermkit.core.optional import require

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PLOTS = ("submissions", "fitzpatrick", "monk", "grades", "confidence")


@dataclass
class Summary:
    cases: int = 0
    submissions_per_day: dict[str, int] = field(default_factory=dict)
    age_groups: Counter[str] = field(default_factory=Counter)
    sexes: Counter[str] = field(default_factory=Counter)
    races: Counter[str] = field(default_factory=Counter)
    self_fitzpatrick: Counter[str] = field(default_factory=Counter)
    estimated_fitzpatrick: Counter[str] = field(default_factory=Counter)
    monk: Counter[str] = field(default_factory=Counter)
    dermatologist_grades_per_case: Counter[int] = field(default_factory=Counter)
    gradable_answers: int = 0
    dermatologist_answers: int = 0
    confidences: Counter[int] = field(default_factory=Counter)
    top_weights: list[float] = field(default_factory=list)
    duplicates_flagged: int = 0

    @property
    def gradable_share(self) -> float | None:
        return self.gradable_answers / self.dermatologist_answers if self.dermatologist_answers else None


def summarize(session: Session) -> Summary:
    query = select(ContributedCase).options(
        selectinload(ContributedCase.images),
        selectinload(ContributedCase.grades).selectinload(GradeRecord.conditions))
    summary = Summary()
    days: Counter[str] = Counter()
    for case in session.scalars(query):
        summary.cases += 1
        days[case.submitted_at.date().isoformat()] += 1
        summary.age_groups[q.AGE_GROUPS.get(case.age_group or "", "not answered")] += 1
        summary.sexes[q.SEXES.get(case.sex_at_birth or "", "not answered")] += 1
        for race in case.race_ethnicity or ["not answered"]:
            summary.races[q.RACES.get(race, race)] += 1
        summary.self_fitzpatrick[case.fitzpatrick_skin_type or "not answered"] += 1
        labels = case_labels(case)
        summary.estimated_fitzpatrick["not graded" if labels.fitzpatrick is None else f"FST{labels.fitzpatrick}"] += 1
        summary.monk["not graded" if labels.monk is None else str(labels.monk)] += 1
        dermatologists = submitted(case, "dermatologist")
        summary.dermatologist_grades_per_case[len(dermatologists)] += 1
        summary.dermatologist_answers += len(dermatologists)
        summary.gradable_answers += sum(bool(g.gradable) for g in dermatologists)
        summary.confidences.update(c.confidence for g in dermatologists for c in g.conditions)
        if labels.differential:
            summary.top_weights.append(max(labels.differential.values()))
        summary.duplicates_flagged += sum(image.duplicate_of is not None for image in case.images)
    summary.submissions_per_day = dict(sorted(days.items()))
    return summary


def _bars(axes: Axes, counts: dict[str, int], title: str) -> None:
    axes.bar([str(k) for k in counts], list(counts.values()), color="#6b4f3a")
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45)


def plot(summary: Summary, name: str) -> bytes:
    """One dashboard plot as PNG bytes (matplotlib, headless)."""
    if name not in PLOTS:
        raise KeyError(name)
    matplotlib = require("matplotlib", "collect", "dashboard plots")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2), layout="constrained")
    axes = figure.subplots()
    if name == "submissions":
        _bars(axes, summary.submissions_per_day, "Submissions per day")
    elif name == "fitzpatrick":
        keys = [*(f"FST{n}" for n in range(1, 7)), "NONE_SELECTED", "not answered", "not graded"]
        width = 0.4
        for offset, (label, counts) in enumerate((("self-reported", summary.self_fitzpatrick),
                                                  ("dermatologists' estimate", summary.estimated_fitzpatrick))):
            axes.bar([i + offset * width for i in range(len(keys))], [counts.get(k, 0) for k in keys], width,
                     label=label)
        axes.set_xticks([i + width / 2 for i in range(len(keys))], keys, rotation=45)
        axes.set_title("Fitzpatrick skin type")
        axes.legend()
    elif name == "monk":
        _bars(axes, {k: summary.monk.get(k, 0) for k in [*map(str, range(1, 11)), "not graded"]},
              "Monk skin tone (lay graders)")
    elif name == "grades":
        _bars(axes, {str(k): v for k, v in sorted(summary.dermatologist_grades_per_case.items())},
              "Dermatologist grades per case")
    else:
        _bars(axes, {str(k): summary.confidences.get(k, 0) for k in range(1, 6)}, "Condition confidence (1–5)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()
