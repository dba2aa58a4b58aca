"""``hf-hub:`` the way a user meets it: a fresh interpreter, an offline cache, and repos that cannot load.

Each repo is laid out by hand as the Hugging Face cache holds it; the subprocesses import nothing
before dermkit, so a loader that relied on another module importing part of huggingface_hub (as
open_clip does, which hid the bug in-process) fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import save_file

from dermkit.core.errors import InputError
from dermkit.models import ModelCard, export_model, load_model
from dermkit.models.families import tiny_clip

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["melanoma on the back", "eczema"]
# open_clip_config.json of a DermLIP PanDerm repo as the Derm1M fork of open_clip writes it: the
# vision config names the PanDerm checkpoint the fork builds its tower from (tower shrunk here).
PANDERM_VISION = {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                  "pretrain_path": "checkpoints/panderm_bb_data6_checkpoint-499.pth"}


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "HF_HUB_CACHE": str(cache),
            "HF_HOME": str(cache.parent / "hf-home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _stock_repo(folder: Path, cfg: dict, state: dict[str, torch.Tensor]) -> Path:
    """A repo as stock open_clip publishes it: config without a dermkit section, safetensors weights."""
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {"size": 32}}))
    save_file(state, folder / "open_clip_model.safetensors")
    return folder


def _stock_cfg() -> dict:
    return {key: value for key, value in tiny_clip.MODEL_CFG.items() if key != "custom_text"}


@pytest.fixture
def offline(hub_cache, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache.root))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return hub_cache


def test_hf_hub_loads_in_a_fresh_interpreter_that_imported_nothing(hub_cache, tmp_path: Path) -> None:
    tiny = load_model("tiny-clip", seed=3)
    hub_cache(export_model(tiny, tmp_path / "export", ModelCard(model_id="tiny-hub")), "dermkit-test/tiny")
    torch.manual_seed(0)
    stock = open_clip.CLIP(**_stock_cfg()).eval()
    hub_cache(_stock_repo(tmp_path / "stock", _stock_cfg(), stock.state_dict()), "someone/stock-clip")
    images = torch.rand(2, 3, 32, 32)
    np.save(tmp_path / "images.npy", images.numpy())
    script = f"""
import sys
from dermkit.models import load_model
assert not any(m.startswith(("open_clip", "huggingface_hub")) for m in sys.modules), "imported before loading"
import numpy as np, torch
images = torch.from_numpy(np.load({str(tmp_path / 'images.npy')!r}))
for repo, out in [("dermkit-test/tiny", "tiny"), ("someone/stock-clip", "stock")]:
    loaded = load_model("hf-hub:" + repo)
    with torch.no_grad():
        np.save({str(tmp_path)!r} + f"/{{out}}-image.npy", loaded.model.encode_image(images).numpy())
        np.save({str(tmp_path)!r} + f"/{{out}}-text.npy", loaded.model.encode_text(loaded.tokenizer({TEXTS!r})).numpy())
print(loaded.card)
"""
    result = subprocess.run([sys.executable, "-c", script], env=_env(hub_cache.root), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for out, model, tokenizer in [("tiny", tiny.model, tiny.tokenizer),
                                  ("stock", stock, open_clip.SimpleTokenizer(context_length=16))]:
        with torch.no_grad():
            expected_image = model.encode_image(images).numpy()
            expected_text = model.encode_text(tokenizer(TEXTS)).numpy()
        np.testing.assert_allclose(np.load(tmp_path / f"{out}-image.npy"), expected_image, atol=1e-6)
        np.testing.assert_allclose(np.load(tmp_path / f"{out}-text.npy"), expected_text, atol=1e-6)


def _cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dermkit.cli", *args], env=_env(cache), capture_output=True,
                          text=True, timeout=300)


def test_cli_export_of_a_repo_missing_from_the_cache_is_one_line_naming_it(hub_cache, tmp_path: Path) -> None:
    result = _cli(["models", "export", "hf-hub:nobody/nothing", "--out", str(tmp_path / "out")], hub_cache.root)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "hf-hub:nobody/nothing" in result.stderr and "not in the Hugging Face cache" in result.stderr
    assert str(hub_cache.root) in result.stderr and not (tmp_path / "out").exists()


def test_cli_panderm_style_repo_names_the_open_clip_build_it_needs(hub_cache, tmp_path: Path) -> None:
    cfg = {**_stock_cfg(), "vision_cfg": PANDERM_VISION}
    state = open_clip.CLIP(**_stock_cfg()).state_dict()
    hub_cache(_stock_repo(tmp_path / "panderm", cfg, state), "redlessone/DermLIP_PanDerm-base-w-PubMed-256")
    result = _cli(["models", "export", "hf-hub:redlessone/DermLIP_PanDerm-base-w-PubMed-256",
                   "--out", str(tmp_path / "out")], hub_cache.root)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    message = result.stderr
    assert "hf-hub:redlessone/DermLIP_PanDerm-base-w-PubMed-256" in message
    assert "vision_cfg.pretrain_path" in message and "Derm1M fork of open_clip" in message
    assert f"open_clip {open_clip.__version__}" in message


def test_repo_with_a_tower_this_open_clip_lacks_is_an_input_error(offline, tmp_path: Path) -> None:
    cfg = {**_stock_cfg(), "vision_cfg": {"image_size": 32, "timm_model_name": "panderm_base_patch16"}}
    offline(_stock_repo(tmp_path / "fork", cfg, {}), "someone/fork-only")
    with pytest.raises(InputError, match=r"hf-hub:someone/fork-only: open_clip .* cannot build .*panderm_base"):
        load_model("hf-hub:someone/fork-only")


@pytest.mark.parametrize("damage, expected", [
    ("drop", r"1 missing keys \(text.ln_final.bias\), 0 unexpected keys"),
    ("extra", r"0 missing keys, 1 unexpected keys \(visual.pretrain_adapter\)"),
    ("shape", r"size mismatch for text.ln_final.bias"),
])
def test_weights_that_do_not_fit_name_the_repo_and_the_keys(offline, tmp_path: Path, damage: str,
                                                            expected: str) -> None:
    state = open_clip.CLIP(**_stock_cfg()).state_dict()
    if damage == "drop":
        del state["ln_final.bias"]  # CLIP layout: open_clip converts it to text.ln_final.bias
    elif damage == "extra":
        state["visual.pretrain_adapter"] = torch.zeros(3)
    else:
        state["ln_final.bias"] = torch.zeros(7)
    offline(_stock_repo(tmp_path / "broken", _stock_cfg(), state), "someone/broken")
    with pytest.raises(InputError, match=expected) as info:
        load_model("hf-hub:someone/broken")
    assert str(info.value).count("hf-hub:someone/broken") == 1
    assert "open_clip_model.safetensors" in str(info.value)


def test_dermkit_export_missing_a_listed_file_names_it(offline, tmp_path: Path) -> None:
    export = export_model(load_model("tiny-clip"), tmp_path / "export", ModelCard(model_id="tiny"))
    (export / "open_clip_model.safetensors").unlink()
    offline(export, "dermkit-test/partial")
    with pytest.raises(InputError, match=r"hf-hub:dermkit-test/partial: open_clip_model.safetensors is not in"):
        load_model("hf-hub:dermkit-test/partial")


def test_repo_without_weights_and_bad_repo_ids_are_reported(offline, tmp_path: Path) -> None:
    folder = _stock_repo(tmp_path / "config-only", _stock_cfg(), {})
    (folder / "open_clip_model.safetensors").unlink()
    offline(folder, "someone/config-only")
    with pytest.raises(InputError, match=r"hf-hub:someone/config-only has no weights file"):
        load_model("hf-hub:someone/config-only")
    with pytest.raises(InputError, match=r"hf-hub:a/b/c is not a Hugging Face repo id"):
        load_model("hf-hub:a/b/c")
