"""Text prompts for zero-shot classification and concept scoring, built from the ontology.

Class names come from the ontology (preferred name + synonyms), so a condition is described the
same way whatever code a source labels it with. Only human-readable terms are used: codes such
as ``MEL`` or ``SCC/SCCIS`` are labels, not language, and a text encoder has rarely seen them.

Templates depend on how the image was taken: a dermoscopic image is described differently from a
clinical photo, so each acquisition type has its own set, and a source may add its own (e.g.
PAD-UFES-20's smartphone photos). The upstream benchmark used one prompt set for every dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dermkit.core.errors import InputError
from dermkit.ontology import Ontology, default_ontology
from dermkit.ontology.tree import is_readable, readable_terms  # noqa: F401 - part of this module's API

CLINICAL_TEMPLATES = (
    "a clinical photograph of {}.",
    "a close-up photo of {} on the skin.",
    "a photo of a skin lesion: {}.",
    "this skin condition is {}.",
    "{}, a skin condition, in a clinical photo.",
)
DERMOSCOPIC_TEMPLATES = (
    "a dermoscopic image of {}.",
    "a dermoscopy photo of {}.",
    "dermatoscopy of a skin lesion showing {}.",
    "a dermoscopic view of {}, a skin lesion.",
    "{} seen under a dermatoscope.",
)
GENERIC_TEMPLATES = (
    "an image of {}.",
    "a skin image of {}.",
    "{}, a skin condition.",
)
TEMPLATES: Mapping[str | None, tuple[str, ...]] = {
    "clinical": CLINICAL_TEMPLATES,
    "dermoscopic": DERMOSCOPIC_TEMPLATES,
    None: GENERIC_TEMPLATES,
}
# Extra templates for sources whose images share a recognisable setting.
SOURCE_TEMPLATES: Mapping[str, tuple[str, ...]] = {
    "pad-ufes-20": (
        "a smartphone photo of {}.",
        "a smartphone picture of a skin lesion diagnosed as {}.",
    ),
}
# MONET-style concept prompts: (template with the concept, the same sentence without it).
CONCEPT_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("This is a skin image of {}", "This is a skin image"),
    ("This is a dermatology image of {}", "This is a dermatology image"),
    ("This is an image of {}", "This is an image"),
)


def templates_for(acquisition: str | None, source: str | None = None) -> tuple[str, ...]:
    """The templates of an acquisition type (``None``: unknown), plus the source's own, if any."""
    if acquisition not in TEMPLATES:
        raise InputError(f"unknown acquisition {acquisition!r}; expected one of {sorted(k for k in TEMPLATES if k)}")
    return TEMPLATES[acquisition] + SOURCE_TEMPLATES.get(source or "", ())


def fill(templates: Sequence[str], terms: Sequence[str]) -> list[str]:
    """Every template with every term (templates × synonyms)."""
    return [template.format(term) for template in templates for term in terms]


def class_prompts(
    class_ids: Sequence[str],
    templates: Sequence[str],
    ontology: Ontology | None = None,
) -> list[list[str]]:
    """For each condition id, its prompts (templates × readable names), in ``class_ids`` order."""
    conditions = (ontology or default_ontology()).conditions
    return [fill(templates, conditions.readable_terms(class_id)) for class_id in class_ids]


def concept_prompts(concept_id: str, ontology: Ontology | None = None) -> list[tuple[list[str], str]]:
    """Per concept template: the target prompts (one per synonym) and the reference prompt."""
    concepts = (ontology or default_ontology()).concepts
    terms = concepts.readable_terms(concept_id)
    return [(fill([target], terms), reference) for target, reference in CONCEPT_TEMPLATES]
