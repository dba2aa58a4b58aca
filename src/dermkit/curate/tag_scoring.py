"""Precision and recall of caption tags against labelled captions (hand-written or generated).

A label is a (vocabulary, id) pair mentioned as present; negations, age, sex and skin type are
scored separately, so a tagger that gets the conditions right but the negations wrong shows it.
Conditions are compared as the most specific ids (the implied ancestors are not double-counted).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dermkit.curate.tagging import CaptionTags
from dermkit.ontology.tagger import VOCABULARIES


@dataclass(frozen=True)
class TagScore:
    """Micro-averaged precision/recall of present labels and of negated ids; accuracy of the rest."""

    captions: int
    precision: float
    recall: float
    negation_precision: float
    negation_recall: float
    age_accuracy: float
    sex_accuracy: float
    fitzpatrick_accuracy: float

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def read_labelled(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a labelled JSONL file: ``text`` plus ``conditions``, ``concepts``, ``body_sites``,
    ``symptoms``, ``negated`` (ids of any vocabulary), ``fitzpatrick``, ``age``, ``sex``."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _ratio(hits: int, total: int) -> float:
    return hits / total if total else 1.0


def score_tags(predicted: Sequence[CaptionTags], labelled: Sequence[Mapping[str, Any]]) -> TagScore:
    """Score ``predicted[i]`` against ``labelled[i]``."""
    if len(predicted) != len(labelled):
        raise ValueError(f"{len(predicted)} predictions for {len(labelled)} labelled captions")
    counts = dict.fromkeys(("tp", "fp", "fn", "ntp", "nfp", "nfn", "age", "sex", "fst"), 0)
    for tags, truth in zip(predicted, labelled):
        found = {(v, i) for v in VOCABULARIES for i in getattr(tags, v)}
        wanted = {(v, i) for v in VOCABULARIES for i in truth.get(v, ())}
        counts["tp"] += len(found & wanted)
        counts["fp"] += len(found - wanted)
        counts["fn"] += len(wanted - found)
        negated = {i for ids in tags.negated.values() for i in ids}
        expected = set(truth.get("negated", ()))
        counts["ntp"] += len(negated & expected)
        counts["nfp"] += len(negated - expected)
        counts["nfn"] += len(expected - negated)
        counts["age"] += _same_age(tags.age, truth.get("age"))
        counts["sex"] += tags.sex == truth.get("sex")
        counts["fst"] += (tags.fitzpatrick[0] if len(tags.fitzpatrick) == 1 else None) == truth.get("fitzpatrick")
    n = len(labelled)
    return TagScore(
        captions=n,
        precision=_ratio(counts["tp"], counts["tp"] + counts["fp"]),
        recall=_ratio(counts["tp"], counts["tp"] + counts["fn"]),
        negation_precision=_ratio(counts["ntp"], counts["ntp"] + counts["nfp"]),
        negation_recall=_ratio(counts["ntp"], counts["ntp"] + counts["nfn"]),
        age_accuracy=_ratio(counts["age"], n),
        sex_accuracy=_ratio(counts["sex"], n),
        fitzpatrick_accuracy=_ratio(counts["fst"], n),
    )


def _same_age(found: float | None, wanted: float | None) -> bool:
    if found is None or wanted is None:
        return found is wanted
    return abs(found - wanted) < 0.01


def labelled_from_generated(captions: Iterable[Any]) -> list[dict[str, Any]]:
    """:class:`~dermkit.curate.caption_gen.GeneratedCaption` answers in the labelled-row layout."""
    rows = []
    for caption in captions:
        row: dict[str, Any] = {v: sorted(caption.present.get(v, ())) for v in VOCABULARIES}
        row.update(text=caption.text, negated=sorted({i for ids in caption.negated.values() for i in ids}),
                   fitzpatrick=caption.fitzpatrick, age=caption.age, sex=caption.sex)
        rows.append(row)
    return rows
