"""Image captions written from a case's structured fields, for image–text training.

Most sources have no captions, so the text a vision-language model learns from is built the
way a curation pipeline would: the diagnosis by a readable name, the kind of image, and only
the facts the case actually records. Captions are varied (several templates, synonyms, optional
facts in random order) so a model does not learn one template, yet deterministic for a given
seed and case id, so a training run can be repeated exactly. A case's own caption (Derm1M) is
always the first one.
"""

from __future__ import annotations

import random
import re

from dermkit.data.aggregate import top_condition
from dermkit.data.table import Case
from dermkit.ontology import Hierarchy, Ontology, default_ontology

# Each caption includes each recorded optional fact with this probability (the diagnosis always).
FACT_PROBABILITY = 0.7
ATTEMPTS_PER_CAPTION = 20

OPENERS = {
    "dermoscopic": ("A dermoscopic image of {dx}", "Dermoscopy of {dx}", "A dermatoscopic view of {dx}",
                    "Dermoscopic photograph showing {dx}"),
    "clinical": ("A clinical photograph of {dx}", "A close-up clinical photo of {dx}",
                 "Clinical image showing {dx}", "A photo of {dx}"),
    None: ("An image of {dx}", "A skin image showing {dx}", "A picture of {dx}"),
}
UNKNOWN_DIAGNOSIS = ("a skin condition", "a skin lesion")
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}
DECADES = {2: "twenties", 3: "thirties", 4: "forties", 5: "fifties", 6: "sixties", 7: "seventies",
           8: "eighties", 9: "nineties"}
# Body sites whose name does not read as "on the <name>".
SITE_PHRASES = {"acral": "on acral skin", "other_site": None}
PARENTHESIS = re.compile(r"\s*\(.*?\)")


def captions_for_case(case: Case, n: int = 3, seed: int = 0, ontology: Ontology | None = None) -> list[str]:
    """``n`` captions of ``case``: its own caption first when it has one, then built ones.

    The same ``seed`` and case id give the same captions; another seed gives others. A case
    with few recorded facts can yield fewer distinct sentences than ``n``; the list is then
    filled by repeating them, so callers always get ``n`` strings.
    """
    ontology = ontology or default_ontology()
    rng = random.Random(f"{seed}:{case.case_id}")
    captions = [case.caption] if case.caption else []
    for _ in range(ATTEMPTS_PER_CAPTION * n):
        if len(captions) >= n:
            break
        text = _compose(case, ontology, rng)
        if text not in captions:
            captions.append(text)
    built = captions[1:] if case.caption else captions
    while built and len(captions) < n:
        captions.append(built[len(captions) % len(built)])
    return captions[:n]


def _compose(case: Case, ontology: Ontology, rng: random.Random) -> str:
    """One caption: an opening clause with diagnosis, site and patient, then optional sentences."""
    def include() -> bool:
        return rng.random() < FACT_PROBABILITY

    opener = rng.choice(OPENERS.get(case.acquisition, OPENERS[None]))
    clause = opener.format(dx=_diagnosis(case, ontology, rng))
    site = _site(case.body_site, ontology)
    if site and include():
        clause += f" {site}"
    patient = _patient(case.age, case.sex, rng)
    if patient and include():
        clause += f" in {patient}"
    sentences = [clause + "."]
    optional = []
    if case.fitzpatrick in ROMAN:
        numeral = ROMAN[case.fitzpatrick]
        optional.append(rng.choice((f"Fitzpatrick skin type {numeral}.", f"The skin is Fitzpatrick type {numeral}.")))
    symptoms = _symptoms(case, ontology)
    if symptoms:
        listed = _join(symptoms)
        optional.append(rng.choice((f"The patient reports {listed}.", f"Reported symptoms: {listed}.")))
    if case.duration:
        since = case.duration if case.duration.startswith("since") else f"for {case.duration}"
        optional.append(rng.choice((f"Present {since}.", f"The condition has been present {since}.")))
    rng.shuffle(optional)
    sentences.extend(sentence for sentence in optional if include())
    return " ".join(sentences)


def _diagnosis(case: Case, ontology: Ontology, rng: random.Random) -> str:
    """The condition by its preferred name or a readable synonym (never a code such as NEV)."""
    condition = case.diagnosis_id or top_condition(case.differential)
    if condition is None:
        return rng.choice(UNKNOWN_DIAGNOSIS)
    node = ontology.conditions.find(condition)
    if node is None:
        return condition.replace("_", " ")
    return _lower_first(rng.choice(ontology.conditions.readable_terms(node.id)))


def _lower_first(name: str) -> str:
    """Sentence-case names go mid-sentence in lower case; acronyms keep their capitals."""
    first = name.split(" ", 1)[0]
    return name if first[1:] != first[1:].lower() else name[:1].lower() + name[1:]


def _site(site_id: str | None, ontology: Ontology) -> str | None:
    if site_id is None:
        return None
    if site_id in SITE_PHRASES:
        return SITE_PHRASES[site_id]
    node = ontology.body_sites.find(site_id)
    name = site_id.replace("_", " ") if node is None else PARENTHESIS.sub("", node.name)
    return f"on the {name.lower()}"


def _patient(age: float | None, sex: str | None, rng: random.Random) -> str | None:
    """A phrase such as "a 45-year-old woman" or "a man in his forties"; None when nothing is known."""
    if age is None and sex not in ("female", "male"):
        return None
    child = age is not None and age < 18
    noun = {"female": "girl" if child else "woman", "male": "boy" if child else "man"}.get(sex or "", "patient")
    if age is None:
        return rng.choice((f"a {noun}", f"a {sex} patient"))
    pronoun = {"female": "her", "male": "his"}.get(sex or "", "their")
    decade = DECADES.get(int(age) // 10)
    if age < 1:
        return "an infant"
    if float(age).is_integer() and (decade is None or rng.random() < 0.5):
        years = int(age)
        article = "an" if years in (8, 11, 18) or 80 <= years <= 89 else "a"  # "an eight", "an eighty"
        return f"{article} {years}-year-old {noun}"
    if decade is None:
        return f"a {noun} aged about {round(age)}"
    return f"a {noun} in {pronoun} {decade}"


def _symptoms(case: Case, ontology: Ontology) -> list[str]:
    """Reported symptoms, plus yes-answers of history questions that name a symptom (itch, grew)."""
    terms = list(case.symptoms or []) + [key for key, answer in (case.history or {}).items() if answer]
    names: list[str] = []
    for term in terms:
        name = _name(ontology.symptoms, term)
        if name is not None and name not in names:
            names.append(name)
    return names


def _name(vocabulary: Hierarchy, term: str) -> str | None:
    node = vocabulary.find(term)
    return None if node is None else node.name.lower()


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
