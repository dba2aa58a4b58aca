"""Clinical ontology shipped as data: a condition hierarchy, a concept vocabulary, body sites.

This package imports nothing else of dermkit.
"""

from dermkit.ontology.normalize import normalize_term
from dermkit.ontology.ontology import Ontology, default_ontology, load_ontology
from dermkit.ontology.tree import Hierarchy, Node, UnknownTermError

__all__ = [
    "Hierarchy",
    "Node",
    "Ontology",
    "UnknownTermError",
    "default_ontology",
    "load_ontology",
    "normalize_term",
]
