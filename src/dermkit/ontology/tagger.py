"""Caption tagging: conditions, concepts, body sites, symptoms, skin types and negations in free text.

The tagger must scale to millions of captions, so all vocabulary work happens once per ontology:
every term of every vocabulary, with its spelling and plural variants, goes into one character
trie that is compiled into a single regular expression (longest match first, word boundaries),
together with the skin-type patterns and the negation cues. Tagging a caption is then one
normalisation and one regex scan per clause, whatever the size of the vocabularies.

Negation follows the NegEx idea, kept simple: a cue ("no", "not", "without", "denies", ...)
negates the terms after it up to the end of its clause, which ends at punctuation (, . ; ! ? and
brackets) or at a contrast word ("but", "however", ...). A colon does not end a clause, so
"Fitzpatrick type: IV" and "symptoms: none" stay whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from dermkit.ontology.normalize import normalize_term
from dermkit.ontology.ontology import Ontology, default_ontology
from dermkit.ontology.tree import Hierarchy

#: The ontology attributes whose terms are tagged, in the order TextTags reports them.
VOCABULARIES = ("conditions", "concepts", "body_sites", "symptoms")

NEGATION_CUES = frozenset({
    "no", "not", "non", "nor", "neither", "never", "without", "denies", "denied", "deny",
    "negative for", "absence of", "absent", "free of", "lack of", "lacks", "lacking", "rather than",
})
SCOPE_BREAKERS = frozenset({"but", "however", "although", "though", "except", "yet", "whereas", "while"})
_CLAUSE_END = re.compile(r"[.,;!?()\[\]{}\n]+")

# Terms shorter than this (two-letter abbreviations such as "AK", "SK") match too many words.
_MIN_TERM_LENGTH = 3

_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}
_FST_VALUE = r"(?:vi|v|iv|iii|ii|i|[1-6])"
_MONK_VALUE = r"(?:10|[1-9])"
SKIN_TYPES = (
    r"(?:fitzpatrick(?: skin)?(?: photo)?(?: type| phototype| scale| class)?|skin (?:photo)?type|phototype|fst)"
    rf" (?P<fitzpatrick>{_FST_VALUE}(?:(?: to| or| and)? {_FST_VALUE})?)"
    r"|(?:monk(?: skin)?(?: tone)?(?: scale)?|mst)"
    rf" (?P<monk>{_MONK_VALUE}(?:(?: to| or| and)? {_MONK_VALUE})?)"
)

# British ↔ American spellings, as (pattern, replacement) rules in each direction. Terms are
# expanded both ways at compile time, so captions need no spelling pass of their own.
_TO_AMERICAN = tuple((re.compile(p), r) for p, r in (
    (r"\bhaem", "hem"), (r"\boedem", "edem"), (r"\bnaev", "nev"), (r"\bleuc", "leuk"), (r"colour", "color"),
    (r"tumour", "tumor"), (r"rrhoe", "rrhe"), (r"\bgrey", "gray"), (r"aesth", "esth"), (r"ageing", "aging"),
    (r"artefact", "artifact"), (r"centre", "center"), (r"(?<=[a-z])is(?=(?:e|ed|es|ing|ation)\b)", "iz"),
))
_TO_BRITISH = tuple((re.compile(p), r) for p, r in (
    (r"\bhem", "haem"), (r"\bedem", "oedem"), (r"\bnev", "naev"), (r"\bleuk", "leuc"), (r"color", "colour"),
    (r"tumor\b", "tumour"), (r"rrhe", "rrhoe"), (r"\bgray", "grey"), (r"\besth", "aesth"), (r"aging", "ageing"),
    (r"artifact", "artefact"), (r"center", "centre"), (r"(?<=[a-z])iz(?=(?:e|ed|es|ing|ation)\b)", "is"),
))


@dataclass(frozen=True)
class TextTags:
    """What one caption mentions: ontology ids per vocabulary, skin types, and negated ids.

    ``conditions`` keeps only the most specific ids (an id is dropped when a descendant is also
    found). ``negated`` maps a vocabulary name to the ids mentioned under a negation cue; an id
    can be both present and negated when a caption says both.
    """

    conditions: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    body_sites: tuple[str, ...] = ()
    symptoms: tuple[str, ...] = ()
    fitzpatrick: tuple[int, ...] = ()
    monk: tuple[int, ...] = ()
    negated: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (lists instead of tuples)."""
        return {
            **{name: list(getattr(self, name)) for name in (*VOCABULARIES, "fitzpatrick", "monk")},
            "negated": {name: list(ids) for name, ids in self.negated.items()},
        }


class Tagger:
    """The compiled matcher of one ontology. Build it through :func:`tagger_for` (cached)."""

    def __init__(self, ontology: Ontology) -> None:
        self._ontology = ontology
        self._targets = term_targets(ontology)
        keys = set(self._targets) | NEGATION_CUES | SCOPE_BREAKERS
        self._pattern = re.compile(rf"\b(?:{SKIN_TYPES}|(?P<term>{_trie_regex(keys)}))\b")

    def tag(self, text: str) -> TextTags:
        """Tag one caption."""
        found: dict[str, dict[str, None]] = {name: {} for name in VOCABULARIES}
        negated: dict[str, dict[str, None]] = {name: {} for name in VOCABULARIES}
        fitzpatrick: set[int] = set()
        monk: set[int] = set()
        for clause in _CLAUSE_END.split(text):
            negating = False
            for match in self._pattern.finditer(normalize_term(clause)):
                term = match["term"]
                if term is None:
                    values = match["fitzpatrick"] or match["monk"]
                    target = fitzpatrick if match["fitzpatrick"] else monk
                    target.update(skin_type_values(values))
                elif term in self._targets:
                    bucket = negated if negating else found
                    for vocabulary, node_id in self._targets[term]:
                        bucket[vocabulary][node_id] = None
                else:
                    negating = term in NEGATION_CUES
        conditions = self._ontology.conditions
        return TextTags(
            conditions=_most_specific(found["conditions"], conditions),
            concepts=tuple(found["concepts"]),
            body_sites=tuple(found["body_sites"]),
            symptoms=tuple(found["symptoms"]),
            fitzpatrick=tuple(sorted(v for v in fitzpatrick if 1 <= v <= 6)),
            monk=tuple(sorted(v for v in monk if 1 <= v <= 10)),
            negated={
                name: _most_specific(ids, conditions) if name == "conditions" else tuple(ids)
                for name, ids in negated.items()
                if ids
            },
        )


@lru_cache(maxsize=8)
def tagger_for(ontology: Ontology) -> Tagger:
    """The tagger of ``ontology``, compiled on first use and cached (ontologies hash by identity)."""
    return Tagger(ontology)


def tag_text(text: str, ontology: Ontology | None = None) -> TextTags:
    """Tag ``text`` against ``ontology`` (the shipped one by default)."""
    return tagger_for(ontology or default_ontology()).tag(text)


# -- compile time -------------------------------------------------------------------------------

def term_targets(ontology: Ontology) -> dict[str, tuple[tuple[str, str], ...]]:
    """Every taggable normalised term → the (vocabulary, node id) pairs it names.

    A term can name nodes in several vocabularies ("scar" is a condition and a concept). Explicit
    terms are entered before generated variants, so a variant never steals another node's term.
    """
    explicit: dict[str, dict[str, str]] = {}
    generated: dict[str, dict[str, str]] = {}
    for vocabulary in VOCABULARIES:
        hierarchy: Hierarchy = getattr(ontology, vocabulary)
        untagged = _untagged_terms(hierarchy)
        for term, node_id in hierarchy.terms().items():
            if len(term) < _MIN_TERM_LENGTH or term.isdigit() or term in untagged:
                continue
            explicit.setdefault(term, {})[vocabulary] = node_id
            for variant in _variants(term) - untagged:
                generated.setdefault(variant, {}).setdefault(vocabulary, node_id)
    for variant, owners in generated.items():
        for vocabulary, node_id in owners.items():
            explicit.setdefault(variant, {}).setdefault(vocabulary, node_id)
    return {term: tuple(owners.items()) for term, owners in explicit.items()}


def _untagged_terms(hierarchy: Hierarchy) -> set[str]:
    """Terms that the data files mark as lookup-only (too ambiguous for free text)."""
    return {normalize_term(str(t)) for node in hierarchy for t in node.attributes.get("untagged", ())}


def _variants(term: str) -> set[str]:
    """Spelling and plural variants of a normalised term (the term itself excluded)."""
    spellings = {term, _respell(term, _TO_AMERICAN), _respell(term, _TO_BRITISH)}
    variants = spellings | {plural for spelling in spellings for plural in _plurals(spelling)}
    variants.discard(term)
    return variants


def _respell(term: str, rules: Iterable[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in rules:
        term = pattern.sub(replacement, term)
    return term


def _plurals(term: str) -> set[str]:
    """English and Latin plural forms of the last word ("naevus" → "naevi", "bulla" → "bullae")."""
    head, _, last = term.rpartition(" ")
    if len(last) < _MIN_TERM_LENGTH or not last.isalpha():
        return set()
    if last.endswith(("s", "x", "z", "ch", "sh")):
        forms = {last + "es"}
    elif last.endswith("y") and last[-2] not in "aeiou":
        forms = {last[:-1] + "ies"}
    else:
        forms = {last + "s"}
    latin = (("us", "i"), ("um", "a"), ("is", "es"), ("a", "ae"), ("o", "ones"))
    forms |= {last[: -len(end)] + plural for end, plural in latin if last.endswith(end)}
    return {f"{head} {form}" if head else form for form in forms}


def _trie_regex(keys: Iterable[str]) -> str:
    """One regex alternation of ``keys`` as a character trie: fast to scan, longest match first.

    Python's ``re`` tries alternatives one by one, so a flat ``a|b|...`` of thousands of terms
    is slow; in a trie each character is tested once. Optional tails are greedy, so the longest
    term wins and the caller's trailing ``\\b`` backtracks to a shorter one at a word boundary.
    """
    trie: dict[str, dict] = {}
    for key in keys:
        node = trie
        for char in key:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


# -- per caption --------------------------------------------------------------------------------

def skin_type_values(text: str) -> Iterator[int]:
    """``"iii iv"`` → 3, 4; ``"5"`` → 5 (a range names its two ends)."""
    for token in text.split():
        if token in _ROMAN:
            yield _ROMAN[token]
        elif token.isdigit():
            yield int(token)


def _most_specific(ids: Iterable[str], hierarchy: Hierarchy) -> tuple[str, ...]:
    """Drop every id that is an ancestor of another id in ``ids``, keeping first-seen order."""
    ordered = list(ids)
    ancestors = {a.id for node_id in ordered for a in hierarchy.ancestors(node_id)}
    return tuple(node_id for node_id in ordered if node_id not in ancestors)
