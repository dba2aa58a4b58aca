"""Inverse rank normalisation (IRN): several graders' ranked conditions → one weighted differential.

The reference standard of SCIN and of the deep-learning differential-diagnosis system. Each
grader gives up to three conditions with a confidence (1–5). Conditions of equal confidence
form one group; groups are ranked densely from the most confident (0, 1, 2, ...); a condition in
group g gets 1/(1+g) from that grader. Weights are summed over graders after mapping names to
ontology ids and normalised to sum to 1. This is the only implementation in dermkit: importers
and the collection platform both call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Grade:
    """One grader's answer for one case: conditions in the order given, with confidences.

    ``confidences`` may be empty (then the given order is the rank) or hold one value per
    condition; a grader who could not grade gives no conditions.
    """

    conditions: Sequence[str]
    confidences: Sequence[int | float | None] = ()

    def __post_init__(self) -> None:
        if self.confidences and len(self.confidences) != len(self.conditions):
            raise ValueError(
                f"{len(self.conditions)} conditions but {len(self.confidences)} confidences"
            )


def grader_weights(grade: Grade) -> dict[str, float]:
    """The 1/(1+g) weight of each condition named by one grader (g = dense confidence rank)."""
    if not grade.conditions:
        return {}
    if grade.confidences and all(c is not None for c in grade.confidences):
        levels = sorted({float(c) for c in grade.confidences}, reverse=True)  # type: ignore[arg-type]
        ranks = [levels.index(float(c)) for c in grade.confidences]  # type: ignore[arg-type]
    else:
        ranks = list(range(len(grade.conditions)))
    weights: dict[str, float] = {}
    for condition, rank in zip(grade.conditions, ranks):
        # A grader counts once per condition: two names of one condition keep the better rank.
        weights[condition] = max(weights.get(condition, 0.0), 1.0 / (1 + rank))
    return weights


def aggregate_differential(
    grades: Iterable[Grade], to_id: Callable[[str], str] | None = None
) -> dict[str, float] | None:
    """Sum the graders' inverse-rank weights per condition id and normalise to 1.

    Returns ``None`` when no grader gave a usable condition: an ungraded case has no label,
    not a uniform one. Ties in the result are ordered by id so the output is deterministic.
    """
    totals: dict[str, float] = {}
    for grade in grades:
        mapped_conditions = [to_id(c) if to_id else c for c in grade.conditions]
        mapped = Grade(mapped_conditions, grade.confidences)
        for condition, weight in grader_weights(mapped).items():
            totals[condition] = totals.get(condition, 0.0) + weight
    total = sum(totals.values())
    if total <= 0:
        return None
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return {condition: weight / total for condition, weight in ordered}


def top_condition(differential: dict[str, float] | None) -> str | None:
    """The highest-weighted condition (ties broken by id), or None for an unlabelled case."""
    if not differential:
        return None
    return min(differential.items(), key=lambda item: (-item[1], item[0]))[0]


def single_label(condition_id: str) -> dict[str, float]:
    """The differential of a single-label source."""
    return {condition_id: 1.0}


__all__: Sequence[str] = ("Grade", "aggregate_differential", "grader_weights", "single_label", "top_condition")
