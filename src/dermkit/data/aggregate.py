"""Inverse rank normalisation (IRN): several graders' ranked conditions → one weighted differential.

The reference standard of SCIN and of the deep-learning differential-diagnosis system. Each
grader gives up to three conditions with a confidence (1–5), or an order of rank groups (tied
conditions share a group). Conditions of equal confidence, or of one rank group, form one group;
groups are ranked densely from the best (0, 1, 2, ...); a condition in group g gets 1/(1+g) from
that grader. Weights are summed over graders after mapping names to ontology ids and normalised
to sum to 1. This is the only implementation in dermkit: importers and the collection platform
all call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Grade:
    """One grader's answer for one case: conditions in the order given, with confidences or ranks.

    ``confidences`` may be empty (then the given order is the rank) or hold one value per
    condition. ``ranks`` says the order without confidences, ties included: one rank group index
    per condition, 0 the best, equal indices tied (build it from groups with
    :meth:`from_rank_groups`). A grade gives confidences or ranks, not both; a grader who could
    not grade gives no conditions.
    """

    conditions: Sequence[str]
    confidences: Sequence[int | float | None] = ()
    ranks: Sequence[int] = ()

    def __post_init__(self) -> None:
        if self.confidences and len(self.confidences) != len(self.conditions):
            raise ValueError(
                f"{len(self.conditions)} conditions but {len(self.confidences)} confidences"
            )
        if self.ranks:
            if self.confidences:
                raise ValueError("a grade gives confidences or ranks, not both")
            if len(self.ranks) != len(self.conditions):
                raise ValueError(f"{len(self.conditions)} conditions but {len(self.ranks)} ranks")
            if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in self.ranks):
                raise ValueError(f"ranks must be whole numbers >= 0, got {list(self.ranks)}")

    @classmethod
    def from_rank_groups(cls, groups: Iterable[Sequence[str]]) -> Grade:
        """A grade from rank groups, best first: ``[["a"], ["b", "c"]]`` is a first, then b and c tied."""
        groups = list(groups)
        return cls([c for group in groups for c in group],
                   ranks=[rank for rank, group in enumerate(groups) for _ in group])


def _dense_ranks(grade: Grade) -> list[int]:
    """Each condition's group rank, dense from 0: by rank groups, else confidence, else the order."""
    if grade.ranks:
        levels = sorted(set(grade.ranks))
        return [levels.index(r) for r in grade.ranks]
    if grade.confidences and all(c is not None for c in grade.confidences):
        confidence_levels = sorted({float(c) for c in grade.confidences}, reverse=True)  # type: ignore[arg-type]
        return [confidence_levels.index(float(c)) for c in grade.confidences]  # type: ignore[arg-type]
    return list(range(len(grade.conditions)))


def grader_weights(grade: Grade) -> dict[str, float]:
    """The 1/(1+g) weight of each condition named by one grader (g = its dense group rank)."""
    if not grade.conditions:
        return {}
    ranks = _dense_ranks(grade)
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
        mapped = replace(grade, conditions=[to_id(c) if to_id else c for c in grade.conditions])
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
