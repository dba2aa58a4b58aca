"""A hierarchy of named nodes with synonyms: the condition ontology and the concept vocabulary.

Nodes have stable ids (lower-case slugs); every name and synonym resolves to its node through
:func:`dermkit.ontology.normalize.normalize_term`, so lookups ignore case and punctuation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from typing_extensions import Self

from dermkit.ontology.normalize import normalize_term

_WORD = re.compile(r"[^\W\d_]+")


def is_readable(term: str) -> bool:
    """True for words a sentence would use: every word lower-case or capitalised, none a code.

    ``"Basal cell carcinoma"`` and ``"mole"`` pass; ``"BCC"``, ``"cSCC"`` and
    ``"squamous cell carcinoma/SCCIS"`` do not. Codes are labels, not language: a text encoder
    has rarely seen them and a caption reader cannot parse them.
    """
    words = _WORD.findall(term)
    return bool(words) and all(word[1:].islower() or len(word) == 1 for word in words) and any(
        len(word) >= 3 for word in words
    )


def readable_terms(node: Node) -> list[str]:
    """The node's preferred name and its readable synonyms, without repeats.

    The preferred name is curated language even when it holds an acronym ("DRESS syndrome"),
    so it is always kept; synonyms are kept only when :func:`is_readable`.
    """
    return list(dict.fromkeys([node.name, *(term for term in node.synonyms if is_readable(term))]))


class UnknownTermError(KeyError):
    """A name, synonym or id that the ontology does not know."""

    def __init__(self, term: str, kind: str = "term", suggestions: Iterable[str] = ()) -> None:
        self.term = term
        self.suggestions = list(suggestions)
        hint = f" (did you mean: {', '.join(self.suggestions)}?)" if self.suggestions else ""
        super().__init__(f"unknown {kind} {term!r}{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Node:
    """One ontology node. ``level`` is 1 for roots."""

    id: str
    name: str
    parent: str | None
    level: int
    synonyms: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def terms(self) -> tuple[str, ...]:
        """The preferred name followed by every synonym."""
        return (self.name, *self.synonyms)


class Hierarchy:
    """Nodes in a forest, with lookups by id or any synonym and the usual tree walks."""

    kind = "term"

    def __init__(self, nodes: Iterable[Node]) -> None:
        self._nodes: dict[str, Node] = {}
        self._children: dict[str | None, list[str]] = {}
        self._by_term: dict[str, str] = {}
        for node in nodes:
            if node.id in self._nodes:
                raise ValueError(f"duplicate {self.kind} id {node.id!r}")
            self._nodes[node.id] = node
            self._children.setdefault(node.parent, []).append(node.id)
        for node in self._nodes.values():
            if node.parent is not None and node.parent not in self._nodes:
                raise ValueError(f"{self.kind} {node.id!r} has unknown parent {node.parent!r}")
            for term in (node.id.replace("_", " "), *node.terms):
                key = normalize_term(term)
                owner = self._by_term.get(key)
                if owner is not None and owner != node.id:
                    raise ValueError(
                        f"{self.kind} term {term!r} is claimed by both {owner!r} and {node.id!r}"
                    )
                self._by_term[key] = node.id

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_nested(cls, roots: list[Mapping[str, Any]]) -> Self:
        """Build from nested mappings ``{id, name, synonyms?, children?, ...attributes}``."""
        nodes: list[Node] = []

        def walk(entry: Mapping[str, Any], parent: str | None, level: int) -> None:
            extra = {k: v for k, v in entry.items() if k not in {"id", "name", "synonyms", "children"}}
            nodes.append(
                Node(
                    id=str(entry["id"]),
                    name=str(entry.get("name", entry["id"])),
                    parent=parent,
                    level=level,
                    synonyms=tuple(str(s) for s in entry.get("synonyms", []) or []),
                    attributes=extra,
                )
            )
            for child in entry.get("children", []) or []:
                walk(child, str(entry["id"]), level + 1)

        for root in roots:
            walk(root, None, 1)
        return cls(nodes)

    @classmethod
    def from_yaml(cls, path: str | Path, key: str) -> Self:
        """Build from the nested list under ``key`` of a YAML file (the shipped data's layout)."""
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        return cls.from_nested(document[key])

    @classmethod
    def from_derm1m_json(cls, path: str | Path) -> Self:
        """Read Derm1M's ``ontology.json``: a mapping of node name → list of child names.

        Names become ids by normalisation; nodes that are nobody's child are roots.
        """
        with open(path, encoding="utf-8") as handle:
            mapping: dict[str, list[str]] = json.load(handle)
        if not isinstance(mapping, dict):
            raise ValueError(f"{path}: expected a JSON object of name -> [child names]")
        parent_of: dict[str, str] = {}
        names = list(mapping)
        for name, children in mapping.items():
            if not isinstance(children, list):
                raise ValueError(f"{path}: children of {name!r} must be a list")
            for child in children:
                if child in parent_of and parent_of[child] != name:
                    raise ValueError(f"{path}: {child!r} has two parents")
                parent_of[child] = name
                if child not in mapping:
                    names.append(child)

        def slug(name: str) -> str:
            return normalize_term(name).replace(" ", "_")

        def depth(name: str) -> int:
            level = 1
            while name in parent_of:
                name = parent_of[name]
                level += 1
            return level

        seen: set[str] = set()
        nodes = []
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            parent = parent_of.get(name)
            nodes.append(
                Node(id=slug(name), name=name, parent=None if parent is None else slug(parent), level=depth(name))
            )
        return cls(nodes)

    # -- lookups ------------------------------------------------------------------------------
    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self.find(term) is not None

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def find(self, term: str) -> Node | None:
        """The node whose id, name or synonym is ``term`` (normalised), else ``None``."""
        if term in self._nodes:
            return self._nodes[term]
        node_id = self._by_term.get(normalize_term(term))
        return None if node_id is None else self._nodes[node_id]

    def get(self, term: str) -> Node:
        """Like :meth:`find` but raises :class:`UnknownTermError` with close matches."""
        node = self.find(term)
        if node is None:
            raise UnknownTermError(term, self.kind, self.suggest(term))
        return node

    def suggest(self, term: str, limit: int = 3) -> list[str]:
        """Names of up to ``limit`` distinct nodes with a term close to ``term``, for error hints."""
        import difflib

        names: list[str] = []
        for match in difflib.get_close_matches(normalize_term(term), list(self._by_term), n=limit * 4):
            name = self._nodes[self._by_term[match]].name
            if name not in names:
                names.append(name)
        return names[:limit]

    def readable_terms(self, term: str) -> list[str]:
        """Human-readable names of a node (see :func:`readable_terms`), for prompts and captions."""
        return readable_terms(self.get(term))

    def terms(self) -> Mapping[str, str]:
        """Every normalised term → node id (what a tagger compiles)."""
        return dict(self._by_term)

    def describe(self, term: str) -> dict[str, Any]:
        """A JSON-friendly record of one node: what ``dermkit ontology show`` prints."""
        node = self.get(term)
        return {
            "kind": self.kind,
            "id": node.id,
            "name": node.name,
            "level": node.level,
            "synonyms": list(node.synonyms),
            "path": [{"id": n.id, "name": n.name} for n in self.path(node.id)],
            "children": [{"id": n.id, "name": n.name} for n in self.children(node.id)],
        }

    # -- tree walks ---------------------------------------------------------------------------
    def parent(self, term: str) -> Node | None:
        node = self.get(term)
        return None if node.parent is None else self._nodes[node.parent]

    def children(self, term: str | None) -> list[Node]:
        key = None if term is None else self.get(term).id
        return [self._nodes[c] for c in self._children.get(key, [])]

    def roots(self) -> list[Node]:
        return self.children(None)

    def ancestors(self, term: str) -> list[Node]:
        """From the parent up to the root."""
        out = []
        node = self.parent(term)
        while node is not None:
            out.append(node)
            node = None if node.parent is None else self._nodes[node.parent]
        return out

    def path(self, term: str) -> list[Node]:
        """From the root down to the node itself."""
        return [*reversed(self.ancestors(term)), self.get(term)]

    def descendants(self, term: str) -> list[Node]:
        out: list[Node] = []
        stack = list(reversed(self.children(term)))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(self.children(node.id)))
        return out

    def level(self, term: str) -> int:
        return self.get(term).level

    def depth(self) -> int:
        return max((n.level for n in self._nodes.values()), default=0)

    def at_level(self, term: str, level: int) -> Node:
        """The node's ancestor at ``level`` (the node itself when it is at or above it)."""
        path = self.path(term)
        return path[min(level, len(path)) - 1]

    def lowest_common_ancestor(self, a: str, b: str) -> Node | None:
        """The deepest node that is ``a`` or an ancestor of it and also of ``b``; None across roots."""
        on_path_a = {n.id for n in self.path(a)}
        for node in reversed(self.path(b)):
            if node.id in on_path_a:
                return node
        return None
