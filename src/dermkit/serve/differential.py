"""Where the differential comes from: the vision-language model's zero-shot ranking, or a
differential-diagnosis model loaded through the same ``load_model`` registry.

A differential-diagnosis family plugs in by returning, from its registered builder, an object with

- ``name``: the model id;
- ``classes``: its output condition names or ontology ids, in output order;
- ``preprocess_eval(image) -> tensor``: its own image transform;
- ``predict_proba(cases, histories) -> ndarray``: for a batch of cases (each an ``n_i×C×H×W``
  tensor of its 1–6 images) and their histories (dicts as in :class:`~dermkit.serve.history.History`),
  one row of class probabilities per case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from dermkit.core.errors import DermkitError
from dermkit.ontology import Ontology, default_ontology
from dermkit.serve.ddx_differential import HISTORY_FIELDS, DdxDifferential, given_fields
from dermkit.serve.history import History
from dermkit.serve.textbank import TextBank

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image


def standard_fields() -> dict[str, Any]:
    """The history form of a differential without a metadata spec: the standard fields, no free-form answers."""
    return {"fields": [f for f in HISTORY_FIELDS if f not in ("history", "measurements")], "flags": [],
            "measurements": [], "age_range": None}


@runtime_checkable
class DifferentialModel(Protocol):
    """What ``load_model(--ddx-model)`` must return (see the module docstring)."""

    name: str
    classes: Sequence[str]
    preprocess_eval: Callable[[Image], torch.Tensor]

    def predict_proba(self, cases: Sequence[torch.Tensor], histories: Sequence[dict[str, Any]]) -> np.ndarray: ...


@dataclass(frozen=True)
class CaseInput:
    """One request's images, preprocessed for each model, with its history and acquisition type."""

    pixels: torch.Tensor  # n×C×H×W for the vision-language model
    ddx_pixels: torch.Tensor | None
    history: History
    acquisition: str | None


class ZeroShotDifferential:
    """The vision-language model's zero-shot ranking over the text bank's condition list."""

    source = "zero-shot"
    test_time_views = None

    def __init__(self, bank: TextBank, model_name: str) -> None:
        self.bank = bank
        self.name = model_name
        self.classes = bank.classes

    def preprocess(self, image: Image) -> None:
        """Zero-shot scoring reuses the vision-language embedding: nothing extra to prepare."""

    def fields(self) -> dict[str, Any]:
        """The zero-shot ranking reads only the photo type; the form still records the history."""
        return standard_fields()

    def check(self, history: History) -> list[str]:
        """Every history field given: the zero-shot ranking reads none of them."""
        return given_fields(history)

    def probs(self, embeddings: np.ndarray, cases: Sequence[CaseInput]) -> np.ndarray:
        """Rows of class probabilities, each case scored with its acquisition type's prompts."""
        out = np.zeros((len(cases), len(self.classes)))
        for acquisition in {case.acquisition for case in cases}:
            rows = [i for i, case in enumerate(cases) if case.acquisition == acquisition]
            out[rows] = self.bank.class_probs(embeddings[rows], acquisition)
        return out


class ModelDifferential:
    """A differential-diagnosis model's own output; its classes are resolved to ontology ids."""

    source = "differential model"
    test_time_views = None  # whatever the plug-in does inside predict_proba

    def __init__(self, model: object, ontology: Ontology | None = None) -> None:
        if not isinstance(model, DifferentialModel):
            raise DermkitError(
                f"{getattr(model, 'name', model)!r} is not a differential-diagnosis model: it needs name, "
                "classes, preprocess_eval and predict_proba (see dermkit.serve.differential)"
            )
        conditions = (ontology or default_ontology()).conditions
        self.model = model
        self.name = model.name
        self.classes = tuple(conditions.get(label).id for label in model.classes)
        self.weights, self.card = model, getattr(model, "card", None)

    def preprocess(self, image: Image) -> torch.Tensor:
        return self.model.preprocess_eval(image)

    def probs(self, embeddings: np.ndarray, cases: Sequence[CaseInput]) -> np.ndarray:
        pixels = [case.ddx_pixels for case in cases if case.ddx_pixels is not None]
        if len(pixels) != len(cases):  # the engine fills them from preprocess, which always returns a tensor
            raise DermkitError(f"{self.name} needs its own preprocessed images for every case")
        probs = np.asarray(self.model.predict_proba(pixels, [case.history.as_dict() for case in cases]),
                           dtype=np.float64)
        if probs.shape != (len(cases), len(self.classes)):
            raise DermkitError(f"{self.name} returned probabilities of shape {probs.shape}, "
                               f"expected {(len(cases), len(self.classes))}")
        return probs

    def fields(self) -> dict[str, Any]:
        """A plug-in model is handed the whole history: the form shows every field but free-form answers."""
        return standard_fields()

    def check(self, history: History) -> list[str]:
        return []


Differential = ZeroShotDifferential | ModelDifferential | DdxDifferential
