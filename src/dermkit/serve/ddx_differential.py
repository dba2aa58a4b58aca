"""A model written by ``dermkit train ddx`` as the service's differential.

The service hands the model the same inputs ``dermkit predict`` does: images through the model's
own :meth:`~dermkit.models.families.ddx.DdxModel.preprocess_eval`, the history as
:class:`~dermkit.predict.CaseFields`, and :meth:`~dermkit.models.families.ddx.DdxModel.predict_tensors`
(with the model's stored test-time views and decision rule) turns them into probabilities, so
both answer identically. The history fields a model reads come from its metadata spec:
age and other measurements, sex, body site, Fitzpatrick type and its yes/no flags (history
answers and symptoms, keyed by ontology symptom id).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dermkit.models.ddx_net import AGE_RANGE, OTHER
from dermkit.models.families.ddx import CONFIG_FILE, DdxModel, load_ddx
from dermkit.ontology import Ontology, default_ontology
from dermkit.predict import CaseFields
from dermkit.serve.errors import ApiError
from dermkit.serve.history import History

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from dermkit.serve.differential import CaseInput

# The history form's fields, as the API names them; every differential says which of them it reads.
HISTORY_FIELDS = ("age", "sex", "fitzpatrick", "site", "symptoms", "duration", "history", "measurements")


def is_ddx_dir(name: str) -> bool:
    """Whether ``--ddx-model`` names a folder written by ``dermkit train ddx``."""
    return (Path(name) / CONFIG_FILE).is_file()


class DdxDifferential:
    """A trained :class:`DdxModel`: its label space (plus ``other``), its inputs, its stored TTA count."""

    source = "differential model"

    def __init__(self, model: DdxModel, ontology: Ontology | None = None) -> None:
        self.model = model
        self.name = model.name
        self.classes = tuple(model.classes)
        self.weights = model.net
        self.card = model.card
        self.test_time_views = model.tta
        self.ontology = ontology or default_ontology()

    @classmethod
    def load(cls, path: str | Path, ontology: Ontology | None = None) -> DdxDifferential:
        return cls(load_ddx(path), ontology)

    def preprocess(self, image: Image) -> torch.Tensor | None:
        return self.model.preprocess_eval(image) if self.model.uses_images else None

    def probs(self, embeddings: np.ndarray, cases: Sequence[CaseInput]) -> np.ndarray:
        images = [[] if case.ddx_pixels is None else list(case.ddx_pixels) for case in cases]
        return np.asarray(self.model.predict_tensors(images, [case_fields(case.history) for case in cases]),
                          dtype=np.float64)

    # -- the history form ---------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """What the page's history form shows: the fields read, the flags' questions and the measurements."""
        spec = self.model.metadata
        if spec is None:
            return {"fields": [], "flags": [], "measurements": [], "age_range": list(AGE_RANGE)}
        symptoms = self.ontology.symptoms
        flags = [{"id": key, "name": node.name if (node := symptoms.find(key)) is not None else key}
                 for key in spec.flags]
        measurements = [name for name in spec.numeric if name != "age"]
        used = ["age", "sex", "fitzpatrick", "site", *(["history"] if flags else []),
                *(["measurements"] if measurements else [])]
        return {"fields": used, "flags": flags, "measurements": measurements, "age_range": list(AGE_RANGE)}

    def check(self, history: History) -> list[str]:
        """Refuse a value outside what the model was trained on (422 naming the field); the given
        fields, answers and measurements the model does not read, as ``ignored``."""
        if history.age is not None and not AGE_RANGE[0] <= history.age <= AGE_RANGE[1]:
            raise ApiError(422, "out_of_range", f"age must lie in [{AGE_RANGE[0]:g}, {AGE_RANGE[1]:g}] years for "
                           f"this model, got {history.age:g}", "age")
        spec = self.model.metadata
        given = given_fields(history)
        if spec is None:
            return given
        known, numeric = set(spec.flags), set(spec.numeric)
        return ((["duration"] if "duration" in given else [])
                + [f"symptoms: {s}" for s in history.symptoms if s not in known]
                + [f"history: {key}" for key in history.answers if key not in known]
                + [f"measurements: {key}" for key in history.measurements if key not in numeric])


def given_fields(history: History) -> list[str]:
    """The history fields a request set, by their API names."""
    values = history.as_dict()
    return [name for name in HISTORY_FIELDS if values.get(name) not in (None, [], {})]


def case_fields(history: History) -> CaseFields:
    """A request's history as the case fields ``dermkit predict`` builds from its arguments."""
    return CaseFields(age=history.age, sex=history.sex, fitzpatrick=history.fitzpatrick, body_site=history.site,
                      symptoms=list(history.symptoms) or None, history=dict(history.answers) or None,
                      measurements=dict(history.measurements) or None)


def ranked_entry(class_id: str, probability: float, ontology: Ontology) -> dict[str, Any]:
    """One differential row with the condition's ontology path (root first; ``other`` has none)."""
    if class_id == OTHER:
        return {"condition": "Other condition", "ontology_id": OTHER, "probability": probability, "path": []}
    conditions = ontology.conditions
    return {"condition": conditions.get(class_id).name, "ontology_id": class_id, "probability": probability,
            "path": [{"id": node.id, "name": node.name} for node in conditions.path(class_id)]}


def parse_pairs(entries: Sequence[str], field: str, value: type) -> dict[str, Any]:
    """``KEY=VALUE`` form fields (``history``: yes/no, ``measurements``: a finite number), 422 naming the entry."""
    from dermkit.predict import ANSWERS

    out: dict[str, Any] = {}
    for position, entry in enumerate(entries):
        key, sep, text = entry.partition("=")
        name = f"{field}[{position}]"
        if not sep or not key.strip():
            raise ApiError(422, "invalid_field", f"{field} entries are KEY=VALUE, got {entry!r}", name)
        if value is bool:
            if text.strip().lower() not in ANSWERS:
                raise ApiError(422, "invalid_field", f"{field} answer for {key.strip()!r} must be yes or no, "
                               f"got {text!r}", name)
            out[key.strip()] = ANSWERS[text.strip().lower()]
            continue
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ApiError(422, "invalid_field", f"{field} value for {key.strip()!r} must be a number, got {text!r}",
                           name)
        out[key.strip()] = number
    return out
