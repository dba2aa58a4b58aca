"""The optional patient history of a request, resolved against the ontology's vocabularies.

Free-text body sites and symptoms are accepted by any name or synonym the ontology knows and
returned as ids; an unknown one is refused with the closest names, so the web page can offer them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dermkit.ontology import Hierarchy, Ontology, default_ontology
from dermkit.serve.errors import ApiError


@dataclass(frozen=True)
class History:
    """What the clinician or patient told us; every field optional, sites and symptoms as ontology ids."""

    age: float | None = None
    sex: str | None = None
    fitzpatrick: int | None = None
    site: str | None = None
    symptoms: tuple[str, ...] = field(default_factory=tuple)
    duration: str | None = None
    answers: dict[str, bool] = field(default_factory=dict)  # yes/no history answers, keyed by symptom id if known
    measurements: dict[str, float] = field(default_factory=dict)  # numeric findings, e.g. diameter_1_mm

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return {**values, "symptoms": list(self.symptoms), "history": values.pop("answers")}


def resolve_term(vocabulary: Hierarchy, term: str, field_name: str) -> str:
    """The id of ``term`` in ``vocabulary``, or a 422 naming ``field_name`` with suggestions."""
    node = vocabulary.find(term)
    if node is None:
        suggestions = vocabulary.suggest(term)
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        raise ApiError(422, f"unknown_{vocabulary.kind.replace(' ', '_')}",
                       f"unknown {vocabulary.kind} {term!r}{hint}", field_name, suggestions)
    return node.id


def resolve_history(
    *,
    age: float | None = None,
    sex: str | None = None,
    fitzpatrick: int | None = None,
    site: str | None = None,
    symptoms: Sequence[str] = (),
    duration: str | None = None,
    answers: Mapping[str, bool] | None = None,
    measurements: Mapping[str, float] | None = None,
    ontology: Ontology | None = None,
) -> History:
    """Validate the vocabulary fields (types and ranges are checked by the request schema)."""
    ontology = ontology or default_ontology()
    site_id = resolve_term(ontology.body_sites, site, "site") if site and site.strip() else None
    symptom_ids = tuple(dict.fromkeys(
        resolve_term(ontology.symptoms, term, f"symptoms[{position}]")
        for position, term in enumerate(symptoms) if term.strip()
    ))
    # Answers keyed as the model's encoder keys them: the symptom id where the ontology knows the name.
    resolved = {(node.id if (node := ontology.symptoms.find(key)) is not None else key): value
                for key, value in (answers or {}).items()}
    return History(age=age, sex=sex, fitzpatrick=fitzpatrick, site=site_id, symptoms=symptom_ids,
                   duration=(duration or "").strip() or None, answers=resolved, measurements=dict(measurements or {}))
