"""The shipped clinical ontology: conditions, concepts, body sites and each source's label map."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from dermkit.ontology.normalize import normalize_term
from dermkit.ontology.tree import Hierarchy, Node, UnknownTermError


class ConditionHierarchy(Hierarchy):
    kind = "condition"


class ConceptVocabulary(Hierarchy):
    kind = "concept"


class BodySites(Hierarchy):
    kind = "body site"


class Symptoms(Hierarchy):
    kind = "symptom"


@dataclass(frozen=True, eq=False)
class Ontology:
    """Everything a caption, a label code or a user's free text can be resolved against.

    Compared and hashed by identity, so per-ontology work (the caption tagger's compiled
    matcher) can be cached on it.
    """

    conditions: ConditionHierarchy
    concepts: ConceptVocabulary
    body_sites: BodySites
    symptoms: Symptoms
    mappings: Mapping[str, Mapping[str, str]]
    label_sets: Mapping[str, tuple[str, ...]]

    def map_label(self, source: str, code: str) -> str:
        """The condition id for ``source``'s label ``code``.

        The source's own table is tried first (codes such as HAM10000's ``bkl``), then the
        condition names and synonyms, so sources with plain-text labels need no table.
        """
        table = self.mappings.get(source, {})
        key = normalize_term(code)
        if key in table:
            return table[key]
        node = self.conditions.find(code)
        if node is None:
            raise UnknownTermError(code, f"{source} label", self.conditions.suggest(code))
        return node.id

    def source_codes(self, source: str) -> Mapping[str, str]:
        """The explicit code table of ``source`` (normalised code → condition id)."""
        return self.mappings.get(source, {})

    def vocabularies(self) -> tuple[Hierarchy, ...]:
        """Conditions, concepts, body sites, symptoms: the order :meth:`lookup` searches them."""
        return (self.conditions, self.concepts, self.body_sites, self.symptoms)

    def lookup(self, term: str) -> tuple[Hierarchy, Node]:
        """The first vocabulary that knows ``term``, and its node.

        Raises :class:`UnknownTermError` with the closest names of every vocabulary.
        """
        for hierarchy in self.vocabularies():
            node = hierarchy.find(term)
            if node is not None:
                return hierarchy, node
        suggestions = [name for hierarchy in self.vocabularies() for name in hierarchy.suggest(term, limit=2)]
        raise UnknownTermError(term, "term", suggestions[:5])

    def label_set(self, name: str) -> list[str]:
        """The condition ids of a named label set (``ddx26``, ``ham10000``, ``isic2019``, ...).

        Models and services train and report on these fixed class lists, in this order.
        """
        if name not in self.label_sets:
            raise UnknownTermError(name, "label set", sorted(self.label_sets))
        return list(self.label_sets[name])


def _read(name: str) -> dict:
    text = resources.files("dermkit.ontology").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_ontology(conditions_path: str | Path | None = None) -> Ontology:
    """Load the shipped ontology; ``conditions_path`` swaps in a Derm1M ``ontology.json``.

    The mapping tables and label sets refer to shipped ids, so they are kept only with the
    shipped conditions.
    """
    if conditions_path is not None:
        conditions = ConditionHierarchy.from_derm1m_json(conditions_path)
        mappings: dict[str, dict[str, str]] = {}
        label_sets: dict[str, tuple[str, ...]] = {}
    else:
        conditions = ConditionHierarchy.from_nested(_read("conditions.yaml")["conditions"])
        mappings = _compile_mappings(_read("mappings.yaml")["mappings"], conditions)
        label_sets = _compile_label_sets(_read("label_sets.yaml")["label_sets"], conditions)
    return Ontology(
        conditions=conditions,
        concepts=ConceptVocabulary.from_nested(_read("concepts.yaml")["concepts"]),
        body_sites=BodySites.from_nested(_read("body_sites.yaml")["body_sites"]),
        symptoms=Symptoms.from_nested(_read("symptoms.yaml")["symptoms"]),
        mappings=mappings,
        label_sets=label_sets,
    )


def _compile_mappings(raw: Mapping[str, Mapping[str, str]], conditions: Hierarchy) -> dict[str, dict[str, str]]:
    compiled: dict[str, dict[str, str]] = {}
    for source, table in raw.items():
        compiled[source] = {}
        for code, target in table.items():
            node = conditions.find(str(target))
            if node is None:
                raise ValueError(f"mappings.yaml: {source} code {code!r} maps to unknown condition {target!r}")
            compiled[source][normalize_term(str(code))] = node.id
    return compiled


def _compile_label_sets(
    raw: Mapping[str, list[str]], conditions: Hierarchy
) -> dict[str, tuple[str, ...]]:
    """Check every label set names shipped condition ids, so a typo fails at load, not in training."""
    known = {node.id for node in conditions}
    compiled: dict[str, tuple[str, ...]] = {}
    for name, ids in raw.items():
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValueError(f"label_sets.yaml: {name} names unknown condition ids {unknown}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"label_sets.yaml: {name} repeats a condition id")
        compiled[name] = tuple(ids)
    return compiled


@lru_cache(maxsize=1)
def default_ontology() -> Ontology:
    """The shipped ontology, loaded once per process."""
    return load_ontology()
