"""The differential-diagnosis network, its label space and metadata encoding, and save/load."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from dermkit.core.errors import InputError
from dermkit.models import load_model
from dermkit.models.ddx_net import OTHER, DdxNet, LabelSpace, MetadataSpec, collate_metadata
from dermkit.models.families.ddx import DdxModel, pad_images, save_ddx


def _case(**fields: object) -> SimpleNamespace:
    names = ("age", "sex", "fitzpatrick", "body_site", "symptoms", "history", "measurements")
    return SimpleNamespace(**{**dict.fromkeys(names), **fields})


def test_label_space_folds_descendants_and_others():
    space = LabelSpace.build(["melanoma", "melanocytic nevus"], other=True)
    assert space.classes == ["melanoma", "melanocytic_nevus", OTHER]
    assert space.index_of("nodular_melanoma") == 0
    assert space.index_of("halo_nevus") == 1
    assert space.index_of("psoriasis") == 2
    target = space.target({"nodular_melanoma": 0.5, "compound_nevus": 0.3, "psoriasis": 0.2})
    assert np.allclose(target, [0.5, 0.3, 0.2])
    closed = LabelSpace.build("ham10000", other=False)
    assert closed.target({"psoriasis": 1.0}) is None and len(closed.classes) == 7


def test_label_space_auxiliary_level_groups_classes():
    space = LabelSpace.build(["melanoma", "melanocytic_nevus", "seborrheic_keratosis"], aux_level=2)
    matrix = space.aux_matrix()
    assert matrix.shape == (4, len(space.aux_classes()))
    assert (matrix[0] == matrix[1]).all()  # melanoma and nevus share "melanocytic neoplasm"
    assert (matrix.sum(axis=1) == 1).all()


def test_metadata_encoding_is_tri_state_and_all_missing_is_zero():
    train = [_case(age=40, history={"itch": True, "smoke": False}, measurements={"diameter_1_mm": 5.0}),
             _case(age=60, symptoms=["bleed"], measurements={"diameter_1_mm": 9.0})]
    spec = MetadataSpec.fit(train)
    assert spec.numeric == ["age", "diameter_1_mm"] and spec.flags == ["bleeding", "itch", "smoke"]
    encoded = spec.encode(_case(age=50, sex="female", body_site="cheek", fitzpatrick=3, history={"smoke": True},
                                symptoms=["itching"]))
    assert encoded["numeric"][0] == pytest.approx(0.0) and list(encoded["present"]) == [1, 0]
    assert list(encoded["flags"]) == [0, 1, 1]
    sex, site, skin = encoded["categorical"]
    assert sex == 1 and skin == 3 and spec.sites[site - 1] == "face"
    assert list(spec.encode(_case(history={"itch": False}))["flags"]) == [0, -1, 0]
    empty = spec.encode(_case())
    assert not any(v.any() for v in empty.values())


class _TinyTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.num_features = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_one_and_six_images_give_finite_outputs_and_padding_changes_nothing(pooling):
    torch.manual_seed(0)
    spec = MetadataSpec.fit([_case(age=30, history={"itch": True})])
    net = DdxNet(5, feature_dim=8, trunk=_TinyTrunk(), metadata=spec, pooling=pooling).eval()
    one, six = [torch.rand(3, 16, 16)], [torch.rand(3, 16, 16) for _ in range(6)]
    images, mask = pad_images([one, six])
    metadata = collate_metadata([spec.encode(_case()), spec.encode(_case(age=70))])
    logits = net(images=images, mask=mask, metadata=metadata)["logits"]
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    alone = net(images=images[:1, :1], mask=mask[:1, :1], metadata={k: v[:1] for k, v in metadata.items()})
    assert torch.allclose(alone["logits"], logits[:1], atol=1e-5)


def test_all_metadata_missing_still_predicts_and_field_dropout_only_in_training():
    spec = MetadataSpec.fit([_case(age=30, history={"itch": True})])
    net = DdxNet(3, metadata=spec, field_dropout=0.5)
    metadata = collate_metadata([spec.encode(_case())] * 4)
    probs = torch.softmax(net.eval()(metadata=metadata)["logits"], dim=1)
    assert torch.isfinite(probs).all() and torch.allclose(probs.sum(dim=1), torch.ones(4))
    full = collate_metadata([spec.encode(_case(age=30, history={"itch": True}))] * 64)
    net.train()
    torch.manual_seed(0)
    outputs = net.metadata(**full)
    assert len({tuple(row.round(decimals=5).tolist()) for row in outputs}) > 1  # fields dropped at random
    net.eval()
    assert torch.allclose(net.metadata(**full)[0], net.metadata(**full)[1])


def test_a_model_needs_some_input():
    with pytest.raises(InputError, match="images, metadata or both"):
        DdxNet(3)


def test_saved_model_loads_through_the_registry_with_a_card(tmp_path):
    from dermkit.models.factory import build_backbone

    backbone = build_backbone("test_efficientnet", pretrained=False, image_size=32)
    spec = MetadataSpec.fit([_case(age=30)])
    space = LabelSpace.build(["melanoma", "melanocytic_nevus"])
    net = DdxNet(3, feature_dim=backbone.dim, trunk=backbone.module, metadata=spec).eval()
    config = {"backbone": backbone.name, "feature_dim": backbone.dim, "preprocess": backbone.preprocess,
              "net": {"pooling": "mean", "hidden": 256, "dropout": 0.3, "field_dropout": 0.2, "n_aux": 0}}
    save_ddx(DdxModel(net, space, spec, config), tmp_path / "m")
    loaded = load_model("ddx", path=str(tmp_path / "m"))
    from PIL import Image

    image = Image.new("RGB", (40, 40), (120, 80, 60))
    probs = loaded.predict_proba([[image, image]], [_case(age=44)])
    original = DdxModel(net, space, spec, config).predict_proba([[image, image]], [_case(age=44)])
    assert np.allclose(probs, original, atol=1e-6)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "ontology_id: melanoma" in card and "Not for diagnosis" in card and "not a medical device" in card
    ranked = loaded.differential(probs[0])
    assert [r["rank"] for r in ranked] == [1, 2, 3] and ranked[0]["probability"] >= ranked[-1]["probability"]
