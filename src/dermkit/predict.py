"""Run a trained differential-diagnosis model: one case from the command line, or a whole case table.

Every user-supplied field is checked before the model runs, and a bad one raises
:class:`InputError` naming the argument (``--site``, ``--age``, an image path), with the
ontology's closest names for an unknown site or symptom.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dermkit.core.errors import InputError
from dermkit.data.images import open_image
from dermkit.data.schema import MAX_IMAGES_PER_CASE, SEXES
from dermkit.models.ddx_net import AGE_RANGE
from dermkit.models.families.ddx import DdxModel, load_ddx
from dermkit.ontology import default_ontology

if TYPE_CHECKING:
    from dermkit.models.backbones import Backbone

ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}
ANSWERS = {"yes": True, "y": True, "true": True, "1": True, "no": False, "n": False, "false": False, "0": False}


@dataclass
class CaseFields:
    """The case-table fields a user can give for one case (attribute names as in the case table)."""

    age: float | None = None
    sex: str | None = None
    fitzpatrick: int | None = None
    body_site: str | None = None
    symptoms: list[str] | None = None
    history: dict[str, bool] | None = None
    measurements: dict[str, float] | None = None
    given: list[str] = field(default_factory=list)  # the arguments the user set, for "ignored" notes


def parse_fields(*, age: float | None = None, sex: str | None = None, fitzpatrick: str | int | None = None,
                 site: str | None = None, symptoms: Sequence[str] = (),
                 history: Mapping[str, str] | None = None,
                 measurements: Mapping[str, str] | None = None) -> CaseFields:
    """Validate and normalise user input; errors name the command-line argument."""
    ontology = default_ontology()
    fields = CaseFields()
    if age is not None:
        if not AGE_RANGE[0] <= age <= AGE_RANGE[1]:
            raise InputError(f"age must lie in [{AGE_RANGE[0]:g}, {AGE_RANGE[1]:g}] years, got {age:g}", field="--age")
        fields.age = float(age)
    if sex is not None:
        if sex.lower() not in SEXES:
            raise InputError(f"sex must be one of {', '.join(SEXES)}, got {sex!r}", field="--sex")
        fields.sex = sex.lower()
    if fitzpatrick is not None:
        text = str(fitzpatrick).strip().lower()
        value = ROMAN.get(text) or (int(text) if text.isdigit() else None)
        if value not in range(1, 7):
            raise InputError(f"Fitzpatrick type must be I–VI (or 1–6), got {fitzpatrick!r}", field="--fitzpatrick")
        fields.fitzpatrick = value
    if site is not None:
        node = ontology.body_sites.find(site)
        if node is None:
            hint = ontology.body_sites.suggest(site)
            raise InputError(f"unknown body site {site!r}" + (f" (did you mean: {', '.join(hint)}?)" if hint else ""),
                             field="--site")
        fields.body_site = node.id
    if symptoms:
        fields.symptoms = []
        for symptom in symptoms:
            node = ontology.symptoms.find(symptom)
            if node is None:
                hint = ontology.symptoms.suggest(symptom)
                raise InputError(f"unknown symptom {symptom!r}" + (f" (did you mean: {', '.join(hint)}?)" if hint
                                                                  else ""), field="--symptom")
            fields.symptoms.append(node.id)
    if history:
        fields.history = {}
        for key, answer in history.items():
            if answer.lower() not in ANSWERS:
                raise InputError(f"history answer for {key!r} must be yes or no, got {answer!r}", field="--history")
            fields.history[key] = ANSWERS[answer.lower()]
    if measurements:
        fields.measurements = {}
        for key, text in measurements.items():
            try:
                fields.measurements[key] = float(text)
            except ValueError:
                raise InputError(f"measurement {key!r} must be a number, got {text!r}", field="--measurement") from None
            if not math.isfinite(fields.measurements[key]):
                raise InputError(f"measurement {key!r} must be finite, got {text!r}", field="--measurement")
    fields.given = [name for name, value in (("--age", age), ("--sex", sex), ("--fitzpatrick", fitzpatrick),
                                             ("--site", site), ("--symptom", symptoms), ("--history", history),
                                             ("--measurement", measurements))
                    if value]
    return fields


def predict_case(model: DdxModel | str | Path, images: Sequence[str | Path], fields: CaseFields | None = None,
                 top: int | None = None, tta: int | None = None) -> dict[str, Any]:
    """The ranked differential of one case: ``{"model", "differential": [{rank, id, name, probability}],
    "ignored"}``; ``ignored`` lists arguments this model does not read; ``tta``: test-time views
    (None: the count stored with the model)."""
    if not images:
        raise InputError("give at least one image", field="IMAGE")
    if len(images) > MAX_IMAGES_PER_CASE:
        raise InputError(f"a case has at most {MAX_IMAGES_PER_CASE} images, got {len(images)}", field="IMAGE")
    fields = fields or CaseFields()
    loaded = [open_image(path) for path in images]  # raises InputError naming the file
    model = model if isinstance(model, DdxModel) else load_ddx(model)
    probs = model.predict_proba([loaded], [fields], tta=tta)[0]
    return {"model": model.card.model_id if model.card else None,
            "differential": model.differential(probs, top), "ignored": ignored_fields(model, fields),
            "tta": model.tta if tta is None else tta, "note": "Research use only: not for diagnosis."}


def ignored_fields(model: DdxModel, fields: CaseFields) -> list[str]:
    """The given arguments the model does not read: all of them for an image-only model, else the
    symptoms, history answers and measurements it was not trained on (``--symptom X``, ``--history K``)."""
    if model.metadata is None:
        return list(fields.given)
    known, numeric = set(model.metadata.flags), set(model.metadata.numeric)
    return ([f"--symptom {s}" for s in fields.symptoms or [] if s not in known]
            + [f"--history {k}" for k in fields.history or {} if k not in known]
            + [f"--measurement {k}" for k in fields.measurements or {} if k not in numeric])


@torch.no_grad()
def predict_table(model: DdxModel, table: str | Path, splits: Sequence[str] = ("test",),
                  cache_dir: str | Path | None = None, tta: int | None = None) -> Any:
    """A predictions table (``dermkit.data.predictions``) for the labelled cases of ``splits``.

    The trunk's features come from (or go to) the feature cache (:mod:`dermkit.models.feature_cache`:
    ``cache_dir``, else the user cache dir) that training uses, keyed by the trunk's weights, so a
    frozen-trunk model's images are encoded only once. With
    ``tta`` > 1 the probabilities are the mean over that many flipped and turned views of every image
    (each view's features cached apart); None: the count stored with the model.
    """
    from dermkit.data.predictions import Predictions
    from dermkit.models.transforms import check_tta

    views = check_tta(model.tta if tta is None else tta)
    frame, cases, target = _labelled_cases(model, table, splits)
    probs = np.mean(_view_probabilities(model, cases, table, cache_dir, views), axis=0)
    model_id = model.card.model_id if model.card else "ddx"
    return Predictions.from_cases(frame, probs, target.argmax(axis=1), model_id, model.classes, target)


@torch.no_grad()
def choose_tta(model: DdxModel, table: str | Path | Sequence[str | Path], cache_dir: str | Path | None = None,
               split: str = "val") -> dict[str, Any]:
    """The test-time view count (``TTA_VIEW_COUNTS``) of best balanced accuracy on ``split`` (of one
    table or of several pooled), the fewest views on a tie: a choice made on validation, never on
    the test split it is used for. Every view is predicted once; each count scores the mean of the
    first that many."""
    from dermkit.metrics import balanced_accuracy
    from dermkit.models.transforms import TTA_VIEW_COUNTS

    tables = [table] if isinstance(table, str | Path) else list(table)
    per_table = [_labelled_cases(model, t, [split]) for t in tables]
    per_view = [np.concatenate(views) for views in zip(*(
        _view_probabilities(model, cases, t, cache_dir, max(TTA_VIEW_COUNTS))
        for t, (_, cases, _) in zip(tables, per_table, strict=True)), strict=True)]
    labels = np.concatenate([target.argmax(axis=1) for _, _, target in per_table])
    scores = {n: balanced_accuracy(np.mean(per_view[:n], axis=0), labels) for n in TTA_VIEW_COUNTS}
    best = max(scores.values())
    return {"views": min(n for n, score in scores.items() if score == best), "split": split,
            "balanced_accuracy": scores}


def _labelled_cases(model: DdxModel, table: str | Path, splits: Sequence[str]) -> tuple[Any, list[Any], np.ndarray]:
    """The table rows of ``splits`` that the model's label space can score, their cases and soft targets."""
    from dermkit.data.table import frame_to_cases

    frame = _rows(table, splits)
    cases = list(frame_to_cases(frame))
    targets = [model.labels.target(c.differential) for c in cases]
    keep = np.array([t is not None for t in targets], dtype=bool)
    if not keep.any():
        outside = model.labels.outside([c.differential for c in cases])
        raise InputError(f"none of the {len(cases)} cases of split {' + '.join(splits)} can be scored: "
                         f"{outside['cases']} lie outside the model's label space ({_label_counts(outside)}), "
                         f"the rest are unlabelled", file=table, field="split")
    frame, cases = frame[keep].reset_index(drop=True), [c for c, k in zip(cases, keep, strict=True) if k]
    return frame, cases, np.stack([t for t in targets if t is not None])


def _rows(table: str | Path, splits: Sequence[str]) -> Any:
    from dermkit.data.table import read_table, rows_in_splits

    return rows_in_splits(read_table(table), splits, origin=table)


def label_space_coverage(model: DdxModel, table: str | Path, splits: Sequence[str] = ("test",)) -> dict[str, Any]:
    """How the cases of ``splits`` meet the model's label space: ``{"cases", "unlabelled", "outside_label_space"}``.

    ``outside_label_space`` (:meth:`LabelSpace.outside`) counts the cases whose label the model has
    no class for, which labels, and whether they were scored as ``other`` or excluded.
    """
    frame = _rows(table, splits)
    differentials = list(frame["differential"])
    return {"cases": len(frame), "unlabelled": sum(not d for d in differentials),
            "outside_label_space": model.labels.outside(differentials)}


def _label_counts(outside: Mapping[str, Any]) -> str:
    return ", ".join(f"{label} {count}" for label, count in outside["labels"].items()) or "none"


def describe_coverage(coverage: Mapping[str, Any]) -> str:
    """One line for people: how many cases lay outside the label space, which, and how they counted."""
    outside = coverage["outside_label_space"]
    if not outside["cases"]:
        return f"all {coverage['cases'] - coverage['unlabelled']} labelled cases lie in the model's label space"
    how = ("scored as the model's 'other' class" if outside["counted_as"] == "other"
           else f"excluded from scoring ({outside['excluded']} cases)")
    return (f"{outside['cases']} of {coverage['cases']} cases lie outside the model's label space "
            f"({_label_counts(outside)}): {how}")


def _view_probabilities(model: DdxModel, cases: list[Any], table: str | Path, cache_dir: str | Path | None,
                        views: int) -> list[np.ndarray]:
    """The model's probabilities of ``cases`` under each of the first ``views`` test-time views (one
    entry for a model without images); trunk features cached in ``cache_dir`` (None: the user cache dir)."""
    from dermkit.models.ddx_net import collate_metadata
    from dermkit.models.families.ddx import pad_images

    model.net.eval()
    inputs: dict[str, Any] = {}
    if model.metadata is not None:
        inputs["metadata"] = collate_metadata([model.metadata.encode(c) for c in cases])
    if not model.uses_images:
        return [model.probabilities(model.net(**inputs)["logits"])]
    backbone, paths, per_view = model.backbone(), list(dict.fromkeys(p for c in cases for p in c.image_paths)), []
    for view in range(views):
        features = _view_features(model, backbone, paths, cache_dir, view)
        inputs["features"], inputs["mask"] = pad_images([[features[p] for p in c.image_paths] for c in cases])
        per_view.append(model.probabilities(model.net(**inputs)["logits"]))
    return per_view


def _view_features(model: DdxModel, backbone: Backbone, paths: list[str], cache_dir: str | Path | None,
                   view: int) -> dict[str, torch.Tensor]:
    """The trunk's features of every image under test-time view ``view``, from the cache or computed into it."""
    from dermkit.models.feature_cache import get_or_compute, trunk_cache
    from dermkit.models.transforms import dihedral_view

    features, _ = get_or_compute(trunk_cache(backbone, paths, cache_dir, view), paths,
                                 lambda p: dihedral_view(model.eval_transform(open_image(p)), view), backbone.module,
                                 batch_size=64, device=torch.device("cpu"),
                                 description="image features" if view == 0 else f"image features, view {view}")
    return features
