"""The models behind the service, loaded once: image and text embedding, differential, concepts, search.

Methods that run a network take whole batches (the micro-batcher groups concurrent requests) and
are called from one model thread; :meth:`Engine.prepare_case` runs in request threads, so image
decoding and resizing overlap with inference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from dermkit import __version__
from dermkit.core.precision import resolve_precision
from dermkit.models.embeddings import l2_normalize, mean_direction
from dermkit.models.encoding import encode_texts
from dermkit.models.feature_cache import weights_fingerprint
from dermkit.ontology import Ontology, default_ontology
from dermkit.serve.config import ServeConfig, condition_ids
from dermkit.serve.ddx_differential import DdxDifferential, is_ddx_dir, ranked_entry
from dermkit.serve.differential import CaseInput, Differential, ModelDifferential, ZeroShotDifferential
from dermkit.serve.errors import ApiError
from dermkit.serve.history import History
from dermkit.serve.readiness import Readiness
from dermkit.serve.similar import SimilarCases
from dermkit.serve.textbank import TextBank, bank_key, concept_leaves, prompt_count

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from dermkit.models.loaded import Encoder, LoadedModel

VERSION_CHARS = 12
log = logging.getLogger("dermkit.serve")


@dataclass(frozen=True)
class Prediction:
    """One case's answer, ranked, with the unit embedding that found its similar cases."""

    differential: list[dict[str, Any]]
    concepts: list[dict[str, Any]]
    similar_cases: list[dict[str, Any]]


def model_version(model: object) -> str:
    """A short fingerprint of the weights: two servers report the same version iff same weights."""
    import torch

    if isinstance(model, torch.nn.Module):
        return weights_fingerprint(model)[:VERSION_CHARS]
    return str(getattr(model, "version", "unknown"))


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to run the image tower under bf16 autocast (the rule of :mod:`dermkit.core.precision`,
    the same as the feature extraction that builds the index, so queries and index agree)."""
    return resolve_precision(precision, device) == "bf16"


class Engine:
    """The loaded vision-language model, its text bank, the differential source and the index."""

    def __init__(
        self,
        vlm: LoadedModel,
        bank: TextBank,
        differential: Differential,
        similar: SimilarCases | None,
        config: ServeConfig,
        ontology: Ontology | None = None,
    ) -> None:
        self.vlm = vlm
        self.bank = bank
        self.differential = differential
        self.similar = similar
        self.config = config
        self.ontology = ontology or default_ontology()
        self.device = next(vlm.model.parameters()).device
        self.bf16 = use_bf16(config.precision, self.device)
        self.models = [self._describe("vision-language", vlm.name, vlm.model, vlm.card)]
        if isinstance(differential, ModelDifferential | DdxDifferential):
            self.models.append(self._describe("differential", differential.name, differential.weights,
                                              differential.card))

    @classmethod
    def load(cls, config: ServeConfig, ontology: Ontology | None = None, readiness: Readiness | None = None) -> Engine:
        """Load the models and the index and get the prompt bank: all the slow work, done once.

        The bank is read from ``--index DIR`` when ``dermkit index build`` stored it there for these
        weights and prompts, else from the prompt cache, else encoded (minutes for a large model).
        ``readiness`` is told as each part is reached and loaded (``/readyz`` shows it).
        """
        import torch

        from dermkit.models import load_model

        readiness = readiness or Readiness()
        ontology = ontology or default_ontology()
        readiness.loading("model")
        vlm = load_model(config.model)
        vlm.model.to(memory_format=torch.channels_last)  # faster convolutions on CPU
        readiness.ready("model", id=vlm.name)
        readiness.loading("index")
        similar = None if config.index is None else SimilarCases.load(config.index, vlm.name)
        readiness.ready("index", cases=None if similar is None else len(similar))
        readiness.loading("prompt_bank")
        bank, source = cls._prompt_bank(vlm, condition_ids(config.classes, ontology), ontology, config)
        readiness.ready("prompt_bank", source=source, classes=len(bank.classes), concepts=len(bank.concepts))
        readiness.loading("differential")
        differential: Differential = (
            ZeroShotDifferential(bank, vlm.name) if config.ddx_model is None
            else DdxDifferential.load(config.ddx_model, ontology) if is_ddx_dir(config.ddx_model)
            else ModelDifferential(load_model(config.ddx_model), ontology)
        )
        readiness.ready("differential", source=differential.source)
        return cls(vlm, bank, differential, similar, config, ontology)

    @staticmethod
    def _prompt_bank(vlm: LoadedModel, classes: list[str], ontology: Ontology, config: ServeConfig
                     ) -> tuple[TextBank, str]:
        """The text bank and where it came from: ``index`` (stored by index build), ``cache`` or ``encoded``."""
        concepts = concept_leaves(ontology)
        key = bank_key(vlm, classes, concepts, ontology)
        if config.index is not None:
            stored = TextBank.load_stored(config.index, key)
            if stored is not None:
                log.info("prompt bank loaded from %s (%d prompts, not re-encoded)", config.index, prompt_count(key))
                return stored, "index"
            log.warning("%s holds no prompt bank for this model's prompts; using the prompt cache (rebuild it "
                        "with dermkit index build, with the server's --classes, to store one)", config.index)
        cached = TextBank.cached_path(key, config.cache_dir).exists()
        if not cached:
            log.info("encoding %d prompts (once per model and condition list)", prompt_count(key))
        bank = TextBank.cached(vlm, classes, concepts, ontology, config.cache_dir, key=key)
        return bank, "cache" if cached else "encoded"

    @staticmethod
    def _describe(role: str, name: str, model: object, card: object) -> dict[str, Any]:
        return {
            "role": role,
            "id": name,
            "version": model_version(model),
            "dermkit_version": __version__,
            "card": None if card is None else card.front_matter(),  # type: ignore[attr-defined]
        }

    # -- request threads ---------------------------------------------------------------------
    def prepare_image(self, image: Image) -> torch.Tensor:
        return self.vlm.preprocess_eval(image)

    def prepare_case(self, images: Sequence[Image], history: History, acquisition: str | None) -> CaseInput:
        """Preprocess a request's images for every model that will see them."""
        import torch

        ddx = [self.differential.preprocess(image) for image in images]
        return CaseInput(
            pixels=torch.stack([self.prepare_image(image) for image in images]),
            ddx_pixels=None if ddx[0] is None else torch.stack(cast("list[torch.Tensor]", ddx)),
            history=history,
            acquisition=acquisition,
        )

    # -- model thread ------------------------------------------------------------------------
    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Unit embeddings of a preprocessed image batch (channels-last, bf16 autocast when enabled)."""
        import torch

        pixels = pixels.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return l2_normalize(cast("Encoder", self.vlm.model.encode_image)(pixels).float().numpy())

    def embed_images(self, pixels: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """One unit embedding per preprocessed image, in one forward pass."""
        import torch

        return list(self.embed_pixels(torch.stack(list(pixels))))

    def embed_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        return list(encode_texts(self.vlm, list(texts)))

    def predict(self, cases: Sequence[CaseInput]) -> list[Prediction]:
        """Differential, concepts and similar cases of every case, images of all cases in one pass."""
        import torch

        sizes = [len(case.pixels) for case in cases]
        image_embeddings = self.embed_pixels(torch.cat([case.pixels for case in cases]))
        embeddings = mean_direction(image_embeddings, np.repeat(np.arange(len(cases)), sizes), len(cases))
        probs = self.differential.probs(embeddings, cases)
        concepts = self.bank.concept_scores(embeddings)
        similar = self.search(embeddings, self.config.similar_cases)
        return [
            Prediction(self._ranked_conditions(probs[row]), self._ranked_concepts(concepts[row]), similar[row])
            for row in range(len(cases))
        ]

    def search(self, embeddings: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """The ``k`` most similar index cases of each query (empty lists without an index)."""
        if self.similar is None:
            return [[] for _ in range(len(embeddings))]
        return self.similar.search(embeddings, k)

    def _ranked_conditions(self, probs: np.ndarray) -> list[dict[str, Any]]:
        order = np.argsort(-probs, kind="stable")[: self.config.top_conditions]
        return [ranked_entry(self.differential.classes[i], float(probs[i]), self.ontology) for i in order]

    def _ranked_concepts(self, scores: np.ndarray) -> list[dict[str, Any]]:
        order = np.argsort(-scores, kind="stable")[: self.config.top_concepts]
        concepts = self.ontology.concepts
        return [{"concept": concepts.get(self.bank.concepts[i]).name, "ontology_id": self.bank.concepts[i],
                 "score": float(scores[i])} for i in order]

    def require_index(self) -> SimilarCases:
        """The similar-case index, or a clear refusal when the server was started without one."""
        if self.similar is None:
            raise ApiError(409, "no_index", "this server has no similar-case index (start it with --index DIR)")
        return self.similar
