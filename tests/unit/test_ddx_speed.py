"""The fine-tuning loop's speed options: decoded images kept in memory, freed memory kept for reuse, the fused
AdamW kernel, trunk compilation."""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

import pytest
import torch

from dermkit.core import memory
from dermkit.data import image_cache
from dermkit.data.image_cache import DecodedImages
from dermkit.data.images import open_image
from dermkit.models.factory import build_backbone
from dermkit.train import ddx_trainer
from dermkit.train.checkpoint import load_checkpoint
from dermkit.train.ddx_trainer import DdxTrainConfig, DdxTrainer
from dermkit.train.optim import adamw, fused_adamw_supported

TINY = {"labels": "ham10000", "other": False, "backbone": "timm:test_efficientnet", "pretrained": False,
        "image_size": 32, "batch_size": 8, "hidden": 16, "precision": "fp32", "inputs": "images"}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, synthetic_ham_table) -> Path:
    return synthetic_ham_table(tmp_path_factory.mktemp("ddx-speed"), val=0.25, test=0.2, size=40)


def test_decoded_images_give_the_same_tensors_as_decoding_every_time(make_image):
    paths = [make_image(f"{i}.jpg", size=(48, 40)) for i in range(3)] + [make_image("3.png", size=(40, 40))]
    train, evaluate = build_backbone("timm:test_efficientnet", pretrained=False, image_size=32).transforms()
    cache = DecodedImages(2**20)
    cache.fill(paths)
    assert len(cache) == 4
    for path in paths:
        assert torch.equal(evaluate(cache.open(path)), evaluate(open_image(path)))
        torch.manual_seed(1)
        augmented = train(cache.open(path))
        torch.manual_seed(1)
        assert torch.equal(augmented, train(open_image(path)))


def test_decoded_images_stop_at_the_budget_and_decode_the_rest_when_used(make_image):
    paths = [make_image(f"{i}.jpg", size=(40, 40)) for i in range(3)]
    cache = DecodedImages(2 * 40 * 40 * 3)  # room for two
    cache.fill(paths)
    assert len(cache) == 2 and cache.used_bytes == 2 * 40 * 40 * 3
    assert cache.open(paths[2]).tobytes() == open_image(paths[2]).tobytes()
    off = DecodedImages(0)
    off.fill(paths)
    assert len(off) == 0 and off.open(paths[0]).tobytes() == open_image(paths[0]).tobytes()


def test_fine_tuning_decodes_each_image_once_and_trains_the_same_weights_as_without_the_cache(
        table, tmp_path, monkeypatch):
    decoded: list[str] = []
    monkeypatch.setattr(image_cache, "open_image", lambda path: decoded.append(str(path)) or open_image(path))
    runs = {}
    for budget in (2048, 0):
        decoded.clear()
        config = DdxTrainConfig(data=[str(table)], out=str(tmp_path / f"run-{budget}"), epochs=2, unfreeze_epoch=0,
                                unfreeze_groups=-1, export=False, image_cache_mb=budget,
                                cache_dir=str(tmp_path / "features"), **TINY)
        trainer = DdxTrainer(config, torch.device("cpu"))
        trainer.run()
        images = [p for c in trainer.train.cases + trainer.val.cases for p in c.image_paths]
        runs[budget] = load_checkpoint(Path(config.out))["model"], sorted(decoded), sorted(images)
    weights, decoded_once, images = runs[2048]
    assert decoded_once == images  # two epochs, each validated: still one decode per image
    assert len(runs[0][1]) > len(images)  # without the cache every epoch decodes again
    assert all(torch.equal(weights[key], runs[0][0][key]) for key in weights)


def test_fused_adamw_is_used_where_torch_has_it_and_falls_back_where_not():
    cpu = [{"params": [torch.nn.Parameter(torch.zeros(3))], "lr": 0.1}]
    assert fused_adamw_supported(torch.device("cpu"))  # torch >= 2.4 has the CPU kernel
    assert adamw(cpu, weight_decay=0.0, fused=True).defaults["fused"] is True
    assert adamw(cpu, weight_decay=0.0, fused=False).defaults["fused"] is None  # torch's default kernel
    meta = [{"params": [torch.nn.Parameter(torch.zeros(3, device="meta"))], "lr": 0.1}]
    assert not fused_adamw_supported(torch.device("meta"))
    assert adamw(meta, weight_decay=0.0, fused=True).defaults["fused"] is None


def test_trunk_compilation_is_off_by_default_and_compiles_the_trunk_in_place_when_asked(table, tmp_path,
                                                                                     monkeypatch):
    defaults = {f.name: f.default for f in dataclasses.fields(DdxTrainConfig)}
    assert defaults["compile_trunk"] is False and defaults["fused_optimizer"] is True
    compiled: list[torch.nn.Module] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    for compile_trunk in (False, True):
        config = DdxTrainConfig(data=[str(table)], out=str(tmp_path / f"run-{compile_trunk}"), unfreeze_epoch=0,
                                unfreeze_groups=-1, compile_trunk=compile_trunk, cache_dir=str(tmp_path / "features"),
                                **TINY)
        trainer = DdxTrainer(config, torch.device("cpu"))
        assert compiled == ([trainer.backbone.module] if compile_trunk else [])
        assert trainer.optimizer.defaults["fused"] is True


def test_heads_on_cached_features_keep_the_default_adamw_kernel(table, tmp_path):
    config = DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), unfreeze_epoch=1, unfreeze_groups=-1,
                            cache_dir=str(tmp_path / "features"), **TINY)
    assert DdxTrainer(config, torch.device("cpu")).optimizer.defaults["fused"] is None


def test_fine_tuning_on_the_cpu_keeps_freed_memory_unless_told_not_to(table, tmp_path, monkeypatch):
    calls: list[bool] = []
    monkeypatch.setattr(ddx_trainer, "keep_freed_memory", lambda: calls.append(True) or True)
    for keep, unfreeze in ((True, None), (False, 0), (True, 0)):  # heads only: the process is left alone
        DdxTrainer(DdxTrainConfig(data=[str(table)], out=str(tmp_path / f"run-{keep}-{unfreeze}"),
                                  keep_freed_memory=keep, unfreeze_epoch=unfreeze, unfreeze_groups=-1,
                                  cache_dir=str(tmp_path / "features"), **TINY), torch.device("cpu"))
    assert calls == [True]


@pytest.mark.parametrize("accepted", [(), (32 * 2**20,), (2**31 - 1, 32 * 2**20)])
def test_keep_freed_memory_never_fixes_the_trim_threshold_without_an_mmap_threshold(monkeypatch, accepted):
    calls: list[tuple[int, int]] = []

    def mallopt(parameter: int, value: int) -> int:
        calls.append((parameter, value))
        return int(parameter == memory.M_TRIM_THRESHOLD or value in accepted)

    monkeypatch.setattr(memory, "_mallopt", lambda: mallopt)
    assert memory.keep_freed_memory() is bool(accepted)
    trims = [value for parameter, value in calls if parameter == memory.M_TRIM_THRESHOLD]
    assert trims == ([2**31 - 1] if accepted else [])
    assert next(value for parameter, value in calls if parameter == memory.M_MMAP_THRESHOLD) == 2**31 - 1


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_is_accepted_by_this_glibc():
    assert memory.keep_freed_memory()
