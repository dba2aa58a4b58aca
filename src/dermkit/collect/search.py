"""Search-as-you-type over the ontology's condition names and synonyms (the grading form's picker)."""

from __future__ import annotations

from functools import lru_cache

from dermkit.ontology import default_ontology, normalize_term

MAX_RESULTS = 10


@lru_cache(maxsize=1)
def _terms() -> list[tuple[str, str, str, str]]:
    """(normalised term, term, condition id, condition name) for every name and synonym."""
    return [(normalize_term(term), term, node.id, node.name)
            for node in default_ontology().conditions for term in node.terms]


def search_conditions(query: str, limit: int = MAX_RESULTS) -> list[dict[str, str]]:
    """Conditions whose name or a synonym starts with the query (then: contains it), one entry each.

    ``matched`` is the synonym that matched when it is not the name, so "SK" shows why
    "Seborrheic keratosis" was offered.
    """
    key = normalize_term(query or "")
    if not key:
        return []
    ranked = sorted(
        ((0 if norm.startswith(key) else 1, len(norm), name, term, node_id)
         for norm, term, node_id, name in _terms() if key in norm),
    )
    results: dict[str, dict[str, str]] = {}
    for _, _, name, term, node_id in ranked:
        if node_id not in results:
            results[node_id] = {"id": node_id, "name": name, "matched": "" if term == name else term}
        if len(results) == limit:
            break
    return list(results.values())
