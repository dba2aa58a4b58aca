"""Prompt embeddings computed once at start, and the per-request scoring that uses them.

The prompts come from :mod:`dermkit.models.prompts` and are ensembled by
:func:`dermkit.models.encoding.encode_prompt_sets`, exactly as the offline zero-shot and concept
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
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit, softmax

from dermkit.core.atomic import atomic_path
from dermkit.core.errors import DermkitError, InputError
from dermkit.core.optional import require
from dermkit.models.encoding import encode_prompt_sets
from dermkit.models.feature_cache import user_cache_root, weights_fingerprint
from dermkit.models.loaded import logit_scale
from dermkit.models.prompts import (
    TEMPLATES,
    class_prompts,
    concept_prompts,
    templates_for,
)
from dermkit.ontology import Ontology, default_ontology

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

ACQUISITIONS: tuple[str | None, ...] = tuple(TEMPLATES)
CACHE_FORMAT = 1
BANK_FORMAT = "dermkit-prompt-bank"
BANK_TENSORS = "promptbank.safetensors"
BANK_INFO = "promptbank.json"


def bank_key(
    loaded: LoadedModel, classes: Sequence[str], concepts: Sequence[str], ontology: Ontology | None = None
) -> dict[str, Any]:
    """What a bank depends on: the model, its weights and every prompt (for the cache and the stored bank)."""
    return {
        "format": CACHE_FORMAT,
        "model": loaded.name,
        "weights": weights_fingerprint(loaded.model),
        "class_ids": list(classes),
        "concept_ids": list(concepts),
        "classes": {str(a): class_prompts(classes, templates_for(a), ontology) for a in ACQUISITIONS},
        "concepts": [concept_prompts(concept_id, ontology) for concept_id in concepts],
    }


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def prompt_count(key: dict[str, Any]) -> int:
    """How many prompts the bank encodes (class prompts per acquisition type, both sides of each concept pair)."""
    classes = sum(len(prompts) for per_type in key["classes"].values() for prompts in per_type)
    return classes + sum(len(targets) + 1 for pairs in key["concepts"] for targets, _ in pairs)


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
        key: dict[str, Any] | None = None,
    ) -> TextBank:
        """:meth:`build`, or the bank built earlier for the same weights and prompts (``key``: their :func:`bank_key`)."""
        path = cls.cached_path(key or bank_key(loaded, classes, concepts, ontology), cache_dir)
        if path.exists():
            with np.load(path) as stored:
                return cls(tuple(classes), {a: stored[f"class_{a}"] for a in ACQUISITIONS}, tuple(concepts),
                           stored["concept_margins"], float(stored["scale"]))
        bank = cls.build(loaded, classes, concepts, ontology)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **bank._arrays())  # type: ignore[arg-type]  # numpy types **kwds as allow_pickle
        return bank

    @staticmethod
    def cached_path(key: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
        """Where :meth:`cached` keeps the bank of ``key``."""
        return Path(cache_dir or user_cache_root() / "textbank") / f"{key_digest(key)}.npz"

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"concept_margins": self.concept_margins, "scale": np.asarray(self.scale),
                **{f"class_{a}": self.class_text[a] for a in ACQUISITIONS}}

    # -- the bank stored beside a similar-case index ------------------------------------------
    def save(self, folder: str | Path, key: dict[str, Any]) -> None:
        """Write ``promptbank.safetensors`` (the embeddings) and ``promptbank.json`` (``key``) into ``folder``.

        The JSON is written last and names the digest the tensors carry, so a half-written pair
        is never taken for a bank.
        """
        safetensors = require("safetensors.numpy", "torch", "storing the prompt bank")
        folder = Path(folder)
        digest = key_digest(key)
        arrays = {name: np.ascontiguousarray(array) for name, array in self._arrays().items()}
        with atomic_path(folder / BANK_TENSORS) as tmp:
            safetensors.save_file(arrays, str(tmp), metadata={"digest": digest})
        info = {**key, "format": BANK_FORMAT, "digest": digest, "prompts": prompt_count(key)}
        with atomic_path(folder / BANK_INFO) as tmp:
            tmp.write_text(json.dumps(info, indent=1) + "\n")

    @classmethod
    def load_stored(cls, folder: str | Path, key: dict[str, Any]) -> TextBank | None:
        """The bank stored in ``folder`` for ``key``; None when absent or for other prompts.

        A bank for other weights of the model means the index beside it was embedded by those
        weights too, so it is refused (:class:`DermkitError`) rather than silently re-encoded.
        """
        safetensors = require("safetensors.numpy", "torch", "reading the prompt bank")
        folder = Path(folder)
        info_file, tensors_file = folder / BANK_INFO, folder / BANK_TENSORS
        if not info_file.exists() or not tensors_file.exists():
            return None
        info = json.loads(info_file.read_text())
        if info.get("format") != BANK_FORMAT:
            raise InputError(f"unknown prompt bank format {info.get('format')!r}", file=info_file)
        if info.get("model") != key["model"] or info.get("weights") != key["weights"]:
            raise DermkitError(
                f"the prompt bank {info_file} was built for other weights ({info.get('model')!r}, "
                f"fingerprint {str(info.get('weights'))[:12]}) than the server runs ({key['model']!r}, "
                f"{key['weights'][:12]}), so the index beside it is stale too; rebuild both with: "
                f"dermkit index build --model {key['model']} TABLE --out {folder}")
        digest = key_digest(key)
        if info.get("digest") != digest:
            return None  # other condition list or prompt templates: the caller encodes its own
        with safetensors.safe_open(str(tensors_file), framework="numpy") as handle:
            if handle.metadata().get("digest") != digest:
                return None
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118  (safe_open is not iterable)
        return cls(tuple(key["class_ids"]), {a: arrays[f"class_{a}"] for a in ACQUISITIONS},
                   tuple(key["concept_ids"]), arrays["concept_margins"], float(arrays["scale"].item()))

    def class_probs(self, embeddings: np.ndarray, acquisition: str | None = None) -> np.ndarray:
        """N×C zero-shot probabilities of unit image embeddings (as ``zero_shot_scores``)."""
        if acquisition not in self.class_text:
            raise InputError(f"unknown acquisition {acquisition!r}", field="acquisition")
        return softmax(self.scale * embeddings @ self.class_text[acquisition].T, axis=1)

    def concept_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """N×K MONET scores in [0, 1] (as ``concept_scores``): mean over templates of the two-way softmax."""
        margins = self.scale * np.einsum("nd,ktd->nkt", embeddings, self.concept_margins)
        return expit(margins).mean(axis=2)
