"""Prompt embeddings computed once at start, and the per-request scoring that uses them.

The prompts come from :mod:`dermkit.evaluate.prompts` and are ensembled by
:func:`dermkit.evaluate.features.encode_prompt_sets`, exactly as the offline zero-shot and concept
tasks build them. Those tasks encode the text on every call, which costs hundreds of text-encoder
passes; a service answering in milliseconds cannot, so the text side is encoded here once and the
image side is scored with the same formulas (tests check both agree with the offline tasks).

The default bank is over three thousand prompts, minutes of a text encoder on a small CPU, so a
built bank is kept on disk, keyed by the model's weights and every prompt: a restart with the same
model and condition list loads it in milliseconds, and any change rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit, softmax

from dermkit.core.atomic import atomic_path
from dermkit.core.errors import InputError
from dermkit.evaluate.features import default_cache_dir, encode_prompt_sets, weights_fingerprint
from dermkit.evaluate.prompts import TEMPLATES, class_prompts, concept_prompts, templates_for
from dermkit.evaluate.zeroshot import logit_scale
from dermkit.ontology import Ontology, default_ontology

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

ACQUISITIONS: tuple[str | None, ...] = tuple(TEMPLATES)
CACHE_FORMAT = 1


def concept_leaves(ontology: Ontology | None = None) -> list[str]:
    """The concepts a photo can show (vocabulary leaves), not their grouping headings."""
    concepts = (ontology or default_ontology()).concepts
    return [node.id for node in concepts if not concepts.children(node.id)]


@dataclass(frozen=True)
class TextBank:
    """Ensembled class prompts per acquisition type, concept directions and the logit scale."""

    classes: tuple[str, ...]
    class_text: dict[str | None, np.ndarray]  # acquisition -> C×D unit rows
    concepts: tuple[str, ...]
    concept_margins: np.ndarray  # K×T×D: target minus reference, per concept template
    scale: float

    @classmethod
    def build(
        cls, loaded: LoadedModel, classes: Sequence[str], concepts: Sequence[str], ontology: Ontology | None = None
    ) -> TextBank:
        """Encode every class prompt (for each acquisition type) and every concept prompt pair."""
        class_sets = {acquisition: class_prompts(classes, templates_for(acquisition), ontology)
                      for acquisition in ACQUISITIONS}
        pairs = [concept_prompts(concept_id, ontology) for concept_id in concepts]
        class_text = {acquisition: encode_prompt_sets(loaded, sets) for acquisition, sets in class_sets.items()}
        n_templates = len(pairs[0]) if pairs else 0
        targets = encode_prompt_sets(loaded, [target for pair in pairs for target, _ in pair])
        references = encode_prompt_sets(loaded, [[reference] for pair in pairs for _, reference in pair])
        margins = (targets - references).reshape(len(pairs), n_templates, -1)
        return cls(tuple(classes), class_text, tuple(concepts), margins, logit_scale(loaded))

    @classmethod
    def cached(
        cls,
        loaded: LoadedModel,
        classes: Sequence[str],
        concepts: Sequence[str],
        ontology: Ontology | None = None,
        cache_dir: str | Path | None = None,
    ) -> TextBank:
        """:meth:`build`, or the bank built earlier for the same weights and prompts."""
        key = {
            "format": CACHE_FORMAT,
            "model": loaded.name,
            "weights": weights_fingerprint(loaded.model),
            "classes": {str(a): class_prompts(classes, templates_for(a), ontology) for a in ACQUISITIONS},
            "concepts": [concept_prompts(concept_id, ontology) for concept_id in concepts],
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        path = Path(cache_dir or default_cache_dir().parent / "textbank") / f"{digest}.npz"
        if path.exists():
            with np.load(path) as stored:
                return cls(tuple(classes), {a: stored[f"class_{a}"] for a in ACQUISITIONS}, tuple(concepts),
                           stored["concept_margins"], float(stored["scale"]))
        bank = cls.build(loaded, classes, concepts, ontology)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, concept_margins=bank.concept_margins, scale=bank.scale,
                     **{f"class_{a}": bank.class_text[a] for a in ACQUISITIONS})
        return bank

    def class_probs(self, embeddings: np.ndarray, acquisition: str | None = None) -> np.ndarray:
        """N×C zero-shot probabilities of unit image embeddings (as ``zero_shot_scores``)."""
        if acquisition not in self.class_text:
            raise InputError(f"unknown acquisition {acquisition!r}", field="acquisition")
        return softmax(self.scale * embeddings @ self.class_text[acquisition].T, axis=1)

    def concept_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """N×K MONET scores in [0, 1] (as ``concept_scores``): mean over templates of the two-way softmax."""
        margins = self.scale * np.einsum("nd,ktd->nkt", embeddings, self.concept_margins)
        return expit(margins).mean(axis=2)
