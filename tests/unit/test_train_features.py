"""Splitting towers at their projection, and the feature cache's key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from dermkit.models import load_model
from dermkit.models.build import build_open_clip
from dermkit.models.families.tiny_clip import MODEL_CFG, PREPROCESS_CFG
from dermkit.models.feature_cache import FeatureCache, image_identity
from dermkit.models.text_padding import text_padding_id, trim_padding
from dermkit.train.towers import Tower


def models() -> list[torch.nn.Module]:
    """tiny-clip (open_clip's CustomTextCLIP, text tower in ``.text``) and the same towers as a stock
    open_clip CLIP, which keeps its text modules on the model itself."""
    return [load_model("tiny-clip").model, build_open_clip({**MODEL_CFG, "custom_text": False}, PREPROCESS_CFG, seed=0)]


@pytest.mark.parametrize("side", ["image", "text"])
@pytest.mark.parametrize("which", [0, 1])
def test_head_of_trunk_features_equals_the_full_tower(side: str, which: int) -> None:
    tower = Tower.of(models()[which], side)
    tokens = load_model("tiny-clip").tokenizer(["a mole", "a rash", "a scar"])
    inputs = torch.randn(3, 3, 32, 32) if side == "image" else tokens
    with torch.no_grad():
        trunk = tower.encode_trunk(inputs)
        assert trunk.shape[1] == 32 and not torch.equal(trunk, tower.encode(inputs))
        torch.testing.assert_close(tower.head()(trunk), tower.encode(inputs))
    assert getattr(tower.holder, tower.projection) is not None  # the projection is put back


@pytest.mark.parametrize("which", [0, 1])
def test_trunk_and_head_parameters_partition_the_tower(which: int) -> None:
    model = models()[which]
    for side in ("image", "text"):
        tower = Tower.of(model, side)
        trunk, head = tower.trunk_parameters(), list(tower.head().parameters())
        assert len(trunk) + len(head) == len(tower.parameters) and head
    text_ids = {id(p) for p in Tower.of(model, "text").parameters}
    assert id(model.logit_scale) not in text_ids and not text_ids & {id(p) for p in model.visual.parameters()}


@pytest.mark.parametrize("which", [0, 1])
def test_trunk_state_holds_the_trunk_parameters_and_buffers_not_the_head(which: int) -> None:
    model = models()[which]
    for side in ("image", "text"):
        tower = Tower.of(model, side)
        stored = {tensor.data_ptr() for tensor in tower.trunk_state().values()}
        assert {p.data_ptr() for p in tower.trunk_parameters()} <= stored
        assert not stored & {p.data_ptr() for p in tower.head().parameters()}
        assert not stored & {p.data_ptr() for p in Tower.of(model, "text" if side == "image" else "image").parameters}
    assert getattr(tower.holder, tower.projection) is not None  # the projection is put back


def test_cache_key_follows_model_preprocessing_and_image_content(
    tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    image = str(make_image("a.png"))

    def cache(**changes: object) -> FeatureCache:
        fingerprint = {"model": "m", "weights": "w", "preprocessing": "p", "items": [image_identity(image)]}
        return FeatureCache(tmp_path / "cache", "image", {**fingerprint, **changes})

    first = cache()
    first.save([image], torch.ones(1, 4))
    assert torch.equal(cache().load()[image], torch.ones(4))  # type: ignore[index]
    assert cache(weights="other").load() is None and cache(preprocessing="q").load() is None
    make_image("a.png", size=(48, 48))
    assert cache().path != first.path and cache().load() is None


def test_cutting_trailing_padding_leaves_hugging_face_text_features_unchanged() -> None:
    loaded = load_model("dermlip-lite")
    tower = Tower.of(loaded.model, "text")
    pad = text_padding_id(tower.holder)
    assert pad is not None and text_padding_id(Tower.of(load_model("tiny-clip").model, "text").holder) is None
    tokens = loaded.tokenizer(["a melanoma on the back", "a benign nevus with a regular network on the arm"])
    seen = []

    def encode(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.shape[1])
        return tower.encode_trunk(batch)

    with torch.no_grad():
        full, cut = tower.encode_trunk(tokens), trim_padding(encode, pad)(tokens)
    assert seen[0] < tokens.shape[1] // 3  # the longest caption's length, not the context's 77
    torch.testing.assert_close(cut, full, atol=1e-5, rtol=1e-5)
