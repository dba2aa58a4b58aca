"""Model naming: registered families, open_clip architectures, directories, and their errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from dermkit.core.errors import DermkitError, InputError
from dermkit.models import LoadedModel, ModelCard, export_model, list_models, load_model, register_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return load_model("tiny-clip")


@pytest.fixture(scope="module")
def tiny_export(tiny: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(tiny, tmp_path_factory.mktemp("export") / "tiny", ModelCard(model_id="tiny"))


def _image(seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(40, 50, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_builtin_families_are_listed() -> None:
    assert {"tiny-clip", "dermlip-lite"} <= set(list_models())


def test_tiny_clip_is_seeded_and_seed_changes_weights(tiny: LoadedModel) -> None:
    again = load_model("tiny-clip", seed=0)
    other = load_model("tiny-clip", seed=1)
    same = again.model.state_dict()
    for key, value in tiny.model.state_dict().items():
        assert torch.equal(value, same[key]), key
    assert not torch.equal(tiny.model.text.token_embedding.weight, other.model.text.token_embedding.weight)


def test_tiny_clip_building_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model("tiny-clip", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_clip_encodes_and_returns_open_clip_dict(tiny: LoadedModel) -> None:
    images = torch.stack([tiny.preprocess_eval(_image(0)), tiny.preprocess_train(_image(1))])
    assert images.shape == (2, 3, 32, 32)
    tokens = tiny.tokenizer(["a photo of melanoma", "eczema on the arm"])
    assert tokens.dtype == torch.long and tokens.shape == (2, 16)
    with torch.no_grad():
        out = tiny.model(images, tokens)
        raw = tiny.model.encode_image(images)
        normed = tiny.model.encode_image(images, normalize=True)
    assert set(out) >= {"image_features", "text_features", "logit_scale"}
    assert out["image_features"].shape == out["text_features"].shape == (2, tiny.embed_dim)
    assert torch.allclose(normed.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(2), atol=1e-3)
    assert out["logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-4)
    assert tiny.name == "tiny-clip" and tiny.card is None
    assert {"visual", "text", "logit_scale"} <= {name for name, _ in tiny.model.named_children()} | {"logit_scale"}


def test_train_transform_is_random_and_eval_is_not(tiny: LoadedModel) -> None:
    image = _image(2)
    assert torch.equal(tiny.preprocess_eval(image), tiny.preprocess_eval(image))
    torch.manual_seed(0)
    crops = [tiny.preprocess_train(image) for _ in range(3)]
    assert not torch.equal(crops[0], crops[1]) or not torch.equal(crops[1], crops[2])


def test_unknown_name_suggests_close_family() -> None:
    with pytest.raises(InputError, match="did you mean dermlip-lite"):
        load_model("dermlip-lit")


def test_bare_open_clip_architecture_suggests_the_prefix() -> None:
    with pytest.raises(InputError, match="did you mean open_clip:ViT-B-32"):
        load_model("ViT-B-32")


def test_unknown_open_clip_architecture_suggests() -> None:
    with pytest.raises(InputError, match="open_clip:ViT-B-32"):
        load_model("open_clip:ViT-B-23")


def test_unknown_pretrained_tag_names_the_known_tags() -> None:
    with pytest.raises(DermkitError, match="laion2b_s34b_b79k"):
        load_model("open_clip:ViT-B-32:not-a-tag")


def test_open_clip_architecture_builds_random_init_offline() -> None:
    loaded = load_model("open_clip:ViT-S-32")
    assert loaded.embed_dim == 384 and loaded.model_cfg["vision_cfg"]["patch_size"] == 32
    assert isinstance(loaded.model, open_clip.CustomTextCLIP) and loaded.model_cfg["custom_text"]
    with torch.no_grad():
        text = loaded.model.encode_text(loaded.tokenizer(["psoriasis"]))
    assert text.shape == (1, 384)


def test_family_options_are_rejected_for_other_sources(tiny_export: Path) -> None:
    with pytest.raises(InputError, match="only apply to registered families"):
        load_model(str(tiny_export), seed=3)


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such model directory") as info:
        load_model(f"local-dir:{tmp_path / 'absent'}")
    assert info.value.file == tmp_path / "absent"


def test_directory_without_config_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="open_clip_config.json is missing"):
        load_model(str(tmp_path))


def test_directory_without_weights_is_reported(tiny_export: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_export, broken)
    (broken / "open_clip_model.safetensors").unlink()
    with pytest.raises(InputError, match="no weights file"):
        load_model(f"local-dir:{broken}")


def test_config_without_model_cfg_is_reported(tmp_path: Path) -> None:
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"preprocess_cfg": {}}))
    with pytest.raises(InputError, match="model_cfg"):
        load_model(str(tmp_path))


def test_plain_path_and_local_dir_load_the_same_model(tiny: LoadedModel, tiny_export: Path) -> None:
    tokens = tiny.tokenizer(["melanoma"])
    with torch.no_grad():
        expected = tiny.model.encode_text(tokens)
        for name in (str(tiny_export), f"local-dir:{tiny_export}"):
            loaded = load_model(name)
            assert loaded.name == name
            assert torch.allclose(loaded.model.encode_text(loaded.tokenizer(["melanoma"])), expected, atol=1e-6)


def test_registering_a_family_twice_fails() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_model("tiny-clip")(lambda device="cpu": None)
