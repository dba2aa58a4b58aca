"""Seeded, Derm1M-like captions with known answers, for benchmarks and scale tests of the tagger.

Real Derm1M captions are scraped text: a diagnosis in one of many spellings, some morphology,
a site, sometimes the patient, symptoms present and denied, and unrelated filler (credits,
hashtags, forum chatter, the odd emoji or accent). The generator draws each part from the
ontology's own terms (names and synonyms; the tagger's variants are not used, so the benchmark
tests spelling handling only through what the vocabulary lists) and records what it put in.
Filler sentences are checked against the ontology tagger at start-up, so that no filler word
silently adds a tag the answer does not list.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from dermkit.ontology import Ontology, default_ontology, normalize_term, tag_text
from dermkit.ontology.tagger import VOCABULARIES, term_targets

_OPENERS = ("Clinical photo of", "Image shows", "Close-up of", "Dermoscopy showing", "Posted by a user:",
            "Case report figure:", "This is", "Photo of", "Example of", "Textbook image:", "")
_CONDITION_FRAMES = ("{}", "lesion consistent with {}", "suspected {}", "biopsy-proven {}", "{} (confirmed)",
                     "classic {}", "early {}")
_CONCEPT_FRAMES = ("with {}", "showing {}", "presenting as {}", "featuring {}")
_SITE_FRAMES = ("on the {}", "located on the {}", "involving the {}", "over the {}")
_SYMPTOM_FRAMES = ("The patient reports {}.", "Associated with {}.", "Complains of {}.", "Symptoms: {}.")
_NEGATION_FRAMES = ("No {}.", "Denies {}.", "There is no {}.", "Without {}.")
_FEMALE = ("woman", "female patient", "girl", "lady")
_MALE = ("man", "male patient", "boy", "gentleman")
_ROMAN = ("I", "II", "III", "IV", "V", "VI")
_FILLER = (
    "Image courtesy of the department archive.", "See more cases on our website.",
    "Photo taken with a smartphone under room light.", "Follow-up in three months was recommended.",
    "#dermatology #medstudent #casestudy", "What do you think this is?", "Très intéressant 👍",
    "Shared with permission.", "Figure 2 from the article.", "Please like and subscribe!",
    "The family was reassured.", "Reference: Smith et al., 2019.", "Zoomed in for detail.",
    "Treatment was started the same week.", "From our weekly quiz.", "Great teaching case.",
)


@dataclass
class GeneratedCaption:
    """A caption and the ids it names: present (per vocabulary), negated, and the patient facts."""

    text: str
    present: dict[str, set[str]] = field(default_factory=dict)
    negated: dict[str, set[str]] = field(default_factory=dict)
    fitzpatrick: int | None = None
    age: float | None = None
    sex: str | None = None


class CaptionGenerator:
    """Draws captions from one ontology's vocabulary; the same seed gives the same captions."""

    def __init__(self, ontology: Ontology | None = None, seed: int = 0) -> None:
        self._ontology = ontology or default_ontology()
        self._rng = random.Random(seed)
        targets = term_targets(self._ontology)
        self._terms: dict[str, list[tuple[str, tuple[tuple[str, str], ...]]]] = {v: [] for v in VOCABULARIES}
        for vocabulary in VOCABULARIES:
            for node in getattr(self._ontology, vocabulary):
                for name in node.terms:
                    if any(ch in name for ch in ".,;!?()[]{}"):  # the tagger would split it into clauses
                        continue
                    owners = targets.get(normalize_term(name))
                    if owners and any(v == vocabulary for v, _ in owners):
                        self._terms[vocabulary].append((name, owners))
        self._filler = tuple(f for f in _FILLER if not any(tag_text(f).as_dict()[v] for v in VOCABULARIES))

    def _pick(self, vocabulary: str, caption: GeneratedCaption, negated: bool = False) -> str:
        name, owners = self._rng.choice(self._terms[vocabulary])
        bucket = caption.negated if negated else caption.present
        for owner_vocabulary, node_id in owners:
            bucket.setdefault(owner_vocabulary, set()).add(node_id)
        return name

    def caption(self) -> GeneratedCaption:
        """One caption with its answer."""
        rng = self._rng
        out = GeneratedCaption(text="")
        condition = rng.choice(_CONDITION_FRAMES).format(self._pick("conditions", out))
        parts = [rng.choice(_OPENERS), condition]
        if rng.random() < 0.6:
            concepts = " and ".join(self._pick("concepts", out) for _ in range(rng.randint(1, 2)))
            parts.append(rng.choice(_CONCEPT_FRAMES).format(concepts))
        if rng.random() < 0.6:
            parts.append(rng.choice(_SITE_FRAMES).format(self._pick("body_sites", out)))
        if rng.random() < 0.5:
            out.sex = rng.choice(("female", "male"))
            noun = rng.choice(_FEMALE if out.sex == "female" else _MALE)
            adult = noun not in ("girl", "boy")
            age = rng.randint(18, 90) if adult else rng.randint(2, 15)
            out.age = float(age)
            parts.append(f"of a {age}-year-old {noun}")
        sentences = [" ".join(p for p in parts if p) + "."]
        if rng.random() < 0.3:
            out.fitzpatrick = rng.randint(1, 6)
            sentences.append(f"Fitzpatrick skin type {_ROMAN[out.fitzpatrick - 1]}.")
        if rng.random() < 0.4:
            sentences.append(rng.choice(_SYMPTOM_FRAMES).format(self._pick("symptoms", out)))
        if rng.random() < 0.3:
            sentences.append(rng.choice(_NEGATION_FRAMES).format(self._pick("symptoms", out, negated=True)))
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            sentences.insert(rng.randint(0, len(sentences)), rng.choice(self._filler))
        out.text = " ".join(sentences)
        return out

    def captions(self, count: int) -> Iterator[GeneratedCaption]:
        for _ in range(count):
            yield self.caption()
