"""parse_model_name: every prefix, paths, families, bare timm names and bad names."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermkit.core.errors import InputError
from dermkit.models.names import (
    BareTimmNameWarning,
    ModelName,
    parse_model_name,
    recorded_backbone,
)


@pytest.mark.parametrize(("name", "source", "reference"), [
    ("tiny-clip", "family", "tiny-clip"),
    ("ddx", "family", "ddx"),
    ("open_clip:ViT-B-32:laion2b_s34b_b79k", "open_clip", "ViT-B-32:laion2b_s34b_b79k"),
    ("hf-hub:ORG/REPO", "hf-hub", "ORG/REPO"),
    ("local-dir:runs/model", "local-dir", "runs/model"),
    ("runs/model", "local-dir", "runs/model"),
    ("./model", "local-dir", "./model"),
    ("timm:resnet50", "timm", "resnet50"),
    ("clip:open_clip:ViT-B-32", "clip", "open_clip:ViT-B-32"),
    ("ddx:runs/ham/model", "ddx", "runs/ham/model"),
    ("embeddings:emb.npy", "embeddings", "emb.npy"),
])
def test_every_form_parses_to_its_source_and_reference(name: str, source: str, reference: str) -> None:
    assert parse_model_name(name) == ModelName(source, reference, name)


def test_only_timm_and_embeddings_are_image_only() -> None:
    assert parse_model_name("timm:resnet50").image_only and parse_model_name("embeddings:e.npy").image_only
    assert not parse_model_name("tiny-clip").image_only and not parse_model_name("hf-hub:a/b").image_only


@pytest.mark.parametrize(("name", "needle"), [
    ("tmm:resnet50", "unknown model prefix 'tmm:'"),
    ("timm:", "nothing after 'timm:'"),
    ("", "non-empty"),
    ("tiny-clipp", "unknown model 'tiny-clipp'"),
])
def test_bad_names_are_refused_with_the_accepted_forms(name: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle) as info:
        parse_model_name(name)
    assert "embeddings:PATH.npy" in str(info.value) or "timm:ARCH" in str(info.value)


def test_a_bare_timm_name_warns_and_means_the_prefixed_one() -> None:
    with pytest.warns(BareTimmNameWarning, match="timm:resnet50"):
        bare = parse_model_name("resnet50")
    assert (bare.source, bare.reference) == (parse_model_name("timm:resnet50").source, "resnet50")


def test_a_bare_timm_backbone_builds_the_same_network_as_the_prefixed_one() -> None:
    import torch

    from dermkit.models.factory import build_backbone

    torch.manual_seed(0)
    prefixed = build_backbone("timm:test_efficientnet", pretrained=False)
    torch.manual_seed(0)
    with pytest.warns(BareTimmNameWarning):
        bare = build_backbone("test_efficientnet", pretrained=False)
    assert bare.name == prefixed.name == "test_efficientnet" and bare.dim == prefixed.dim
    assert bare.preprocess == prefixed.preprocess
    assert all(torch.equal(v, bare.module.state_dict()[k]) for k, v in prefixed.module.state_dict().items())


def test_a_windows_drive_is_a_path_not_a_prefix(tmp_path: Path) -> None:
    assert parse_model_name("C:\\models\\m").source == "local-dir"


def test_a_recorded_backbone_needs_no_prefix_and_does_not_warn() -> None:
    assert recorded_backbone("resnet50") == ModelName("timm", "resnet50", "timm:resnet50")
    assert recorded_backbone("clip:tiny-clip").source == "clip"
