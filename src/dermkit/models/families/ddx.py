"""``ddx``: a saved differential-diagnosis model (a directory), loaded as ``load_model("ddx", path=DIR)``.

Layout: ``ddx_config.json`` (backbone name, preprocessing, classes, metadata spec, network shape),
``ddx_model.safetensors`` (every weight, trunk included) and ``README.md`` (the model card). The
predictor turns images plus optional case fields into a ranked differential with ontology ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermkit.core.atomic import atomic_dir
from dermkit.core.errors import InputError
from dermkit.models.card import ModelCard
from dermkit.models.factory import Source, build_backbone, register_source
from dermkit.models.names import recorded_backbone, register_model
from dermkit.ontology import default_ontology

if TYPE_CHECKING:  # torch is imported where used, so registering this family stays cheap
    import numpy as np
    import torch
    from PIL.Image import Image

    from dermkit.models.backbones import Backbone
    from dermkit.models.ddx_net import DdxNet, LabelSpace, MetadataSpec

CONFIG_FILE = "ddx_config.json"
WEIGHTS_FILE = "ddx_model.safetensors"
CARD_FILE = "README.md"
FORMAT = "dermkit-ddx"
INTENDED_USE = (
    "Research on differential diagnosis of skin conditions from photographs and patient metadata "
    "(ranking, calibration, subgroup analysis). Not for diagnosis or triage of patients."
)


@dataclass
class DdxModel:
    """A trained differential-diagnosis network with everything needed to feed it."""

    net: DdxNet
    labels: LabelSpace
    metadata: MetadataSpec | None
    config: dict[str, Any]
    card: ModelCard | None = None

    @property
    def uses_images(self) -> bool:
        return self.net.image_proj is not None

    @property
    def classes(self) -> list[str]:
        return self.labels.classes

    def backbone(self) -> Backbone:
        """The trained trunk as a :class:`Backbone` (feature cache keys, transfer to another dataset)."""
        from dermkit.models.backbones import Backbone

        if self.net.trunk is None:
            raise InputError("this model has no image trunk (it was trained on metadata only)", field="backbone")
        return Backbone(self.config["backbone"], self.net.trunk, int(self.config["feature_dim"]),
                        dict(self.config["preprocess"]))

    @cached_property
    def eval_transform(self) -> Callable[[Image], torch.Tensor]:
        from dermkit.models.transforms import eval_transform

        return eval_transform(self.config["preprocess"])

    @property
    def name(self) -> str:
        return self.card.model_id if self.card and self.card.model_id else "ddx"

    @property
    def tta(self) -> int:
        """The number of test-time views validated for this model (``tta`` in its config; 1 when none stored)."""
        return int((self.config.get("tta") or {}).get("views", 1))

    def preprocess_eval(self, image: Image) -> torch.Tensor:
        """One image as the network sees it (C×H×W): the model's own evaluation transform."""
        return self.eval_transform(image)

    def predict_proba(self, images: Sequence[Sequence[Image]], cases: Sequence[Any], tta: int | None = None
                      ) -> np.ndarray:
        """Class probabilities (N×C) for N cases, each with its images and its fields (any attributes
        named as in the case table; missing ones are unknown); with ``tta`` > 1, the mean over that
        many flipped and turned views of every image (``models.transforms.DIHEDRAL_VIEWS``); None:
        the model's stored count (:attr:`tta`)."""
        tensors = [[self.preprocess_eval(i) for i in imgs] if self.uses_images else [] for imgs in images]
        return self.predict_tensors(tensors, cases, tta)

    def predict_tensors(self, images: Sequence[Sequence[torch.Tensor]], cases: Sequence[Any],
                        tta: int | None = None) -> np.ndarray:
        """:meth:`predict_proba` on images already through :meth:`preprocess_eval`: the one path from a
        case's images and history to probabilities, shared by ``dermkit predict`` and the service.
        ``images`` is not read by a model without an image trunk."""
        import torch

        from dermkit.models.ddx_net import collate_metadata
        from dermkit.models.transforms import check_tta, dihedral_view

        views = check_tta(self.tta if tta is None else tta)
        self.net.eval()
        inputs: dict[str, Any] = {}
        if self.uses_images:
            inputs["images"], inputs["mask"] = pad_images(images)
        if self.metadata is not None:
            inputs["metadata"] = collate_metadata([self.metadata.encode(case) for case in cases])
        with torch.no_grad():
            if not self.uses_images:
                return self.probabilities(self.net(**inputs)["logits"])
            per_view = [self.probabilities(self.net(**{**inputs, "images": dihedral_view(inputs["images"], v)})["logits"])
                        for v in range(views)]
        return sum(per_view[1:], per_view[0]) / views

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        """Class probabilities under the model's decision rule: the softmax of the logits plus the
        per-class bias fitted on validation (``logit_adjustment``; none for a plain-argmax model)."""
        import torch

        bias = self.config.get("logit_adjustment")
        logits = logits.float() if bias is None else logits.float() + torch.tensor(bias, dtype=torch.float32)
        return torch.softmax(logits, dim=1).numpy()

    def differential(self, probs: np.ndarray, top: int | None = None) -> list[dict[str, Any]]:
        """One case's probabilities as a ranked list of {rank, id, name, probability}."""
        import numpy as np

        from dermkit.models.ddx_net import OTHER

        conditions = default_ontology().conditions
        order = np.argsort(-probs, kind="stable")[:top]
        return [{"rank": rank + 1, "id": self.classes[i],
                 "name": "Other condition" if self.classes[i] == OTHER else conditions.get(self.classes[i]).name,
                 "probability": float(probs[i])} for rank, i in enumerate(order)]


def pad_images(per_case: Sequence[Sequence[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack cases of 1–K images into B×K×C×H×W (zero padding) and the B×K mask of real images."""
    import torch

    width = max(len(images) for images in per_case)
    first = per_case[0][0]
    batch = first.new_zeros((len(per_case), width, *first.shape))
    mask = torch.zeros((len(per_case), width), dtype=torch.bool)
    for row, images in enumerate(per_case):
        batch[row, : len(images)] = torch.stack(list(images))
        mask[row, : len(images)] = True
    return batch, mask


def build_net(config: dict[str, Any], trunk: torch.nn.Module | None) -> DdxNet:
    """The network a config describes (weights random until loaded)."""
    from dermkit.models.ddx_net import DdxNet, MetadataSpec

    metadata = MetadataSpec(**config["metadata"]) if config["metadata"] is not None else None
    return DdxNet(len(config["classes"]), feature_dim=config["feature_dim"], trunk=trunk, metadata=metadata,
                  **config["net"])


def save_ddx(model: DdxModel, out: str | Path) -> Path:
    """Write the model directory atomically (config, weights, card)."""
    from dermkit.models.weights import save_weights

    config = {**model.config, "format": FORMAT, "version": 1, "classes": model.classes,
              "labels": {"other": model.labels.other, "aux_level": model.labels.aux_level},
              "metadata": None if model.metadata is None else model.metadata.to_dict()}
    card = model.card or ModelCard(model_id=Path(out).name)
    card.classes, card.intended_use = list(model.classes), INTENDED_USE
    card.inputs = {"images": f"1-6 images, {config['preprocess']['size']} px" if model.uses_images else "none",
                   "metadata": "none" if model.metadata is None else
                   f"age, sex, body site, Fitzpatrick, {len(model.metadata.flags)} history/symptom flags"}
    with atomic_dir(out) as tmp:
        save_weights(model.net, tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        (tmp / CARD_FILE).write_text(card.to_markdown())
    return Path(out)


def store_tta(path: str | Path, choice: dict[str, Any]) -> None:
    """Record a validated test-time view count (``{"views", "split", ...}`` from ``predict.choose_tta``)
    in the model's ``ddx_config.json``, beside ``logit_adjustment``; written atomically."""
    from dermkit.core.atomic import atomic_write_text

    config_file = _check_ddx_dir(Path(path))
    config = json.loads(config_file.read_text())
    config["tta"] = dict(choice)
    atomic_write_text(config_file, json.dumps(config, indent=2) + "\n")


def _check_ddx_dir(path: Path) -> Path:
    """The model's config file; a directory without one is not a ddx model."""
    config_file = path / CONFIG_FILE
    if not config_file.exists():
        raise InputError(f"not a dermkit ddx model directory (no {CONFIG_FILE})", file=path)
    return config_file


def load_ddx(path: str | Path, device: str = "cpu") -> DdxModel:
    """Read a directory written by :func:`save_ddx`."""
    from safetensors.torch import load_file

    from dermkit.models.ddx_net import LabelSpace, MetadataSpec

    path = Path(path)
    config_file = _check_ddx_dir(path)
    config = json.loads(config_file.read_text())
    if config.get("format") != FORMAT:
        raise InputError(f"{CONFIG_FILE} is not a {FORMAT} config", file=config_file)
    trunk = build_backbone(recorded_backbone(config["backbone"]), pretrained=False).module if config["feature_dim"] else None
    net = build_net(config, trunk)
    net.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    labels = LabelSpace(list(config["classes"]), **config["labels"])
    card = ModelCard.read(path / CARD_FILE) if (path / CARD_FILE).exists() else None
    metadata = None if config["metadata"] is None else MetadataSpec(**config["metadata"])
    return DdxModel(net.to(device).eval(), labels, metadata, config, card)


@register_model("ddx")
def ddx(device: str = "cpu", path: str | Path | None = None) -> DdxModel:
    """``load_model("ddx", path=DIR)``: a differential-diagnosis model saved by ``dermkit train ddx``."""
    if path is None:
        raise InputError("the ddx family loads a trained model: pass path=DIR (a `dermkit train ddx` output)")
    return load_ddx(path, device=device)


register_source("ddx", Source("ddx", model=lambda name, device: load_ddx(name.reference, device),
                              backbone=lambda name, pretrained: load_ddx(name.reference).backbone(),
                              check=lambda name: _check_ddx_dir(Path(name.reference))))
