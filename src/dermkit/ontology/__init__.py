"""Clinical ontology shipped as data: conditions, concepts, body sites, symptoms, a caption tagger.

This package imports nothing else of dermkit.
"""

from dermkit.ontology.normalize import normalize_term
from dermkit.ontology.ontology import Ontology, default_ontology, load_ontology
from dermkit.ontology.tagger import TextTags, tag_text
from dermkit.ontology.tree import Hierarchy, Node, UnknownTermError

__all__ = [
    "Hierarchy",
    "Node",
    "Ontology",
    "TextTags",
    "UnknownTermError",
    "default_ontology",
    "load_ontology",
    "normalize_term",
    "tag_text",
]
