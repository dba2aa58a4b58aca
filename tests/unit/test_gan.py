"""CycleGAN: shapes, a training step whose cycle loss falls, samples, checkpoints and synthesis."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dermkit.data.splits import assign_splits
from dermkit.data.table import read_table
from dermkit.models.gan import PatchDiscriminator, UNetGenerator, load_cyclegan
from dermkit.train.checkpoint import load_checkpoint
from dermkit.train.gan import CycleGanTrainer, GanTrainConfig, synthesize, train_gan

TINY = {"class_a": "melanocytic_nevus", "class_b": "melanoma", "image_size": 16, "base": 8, "depth": 2,
        "batch_size": 2}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, synthetic_ham_table) -> Path:
    return synthetic_ham_table(tmp_path_factory.mktemp("gan"), val=0.2, test=0.2)


def test_generator_keeps_shape_and_range_and_discriminator_scores_patches():
    generator, discriminator = UNetGenerator(base=8, depth=3), PatchDiscriminator(base=8, layers=2)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    fake = generator(images)
    assert fake.shape == images.shape and fake.abs().max() <= 1
    assert discriminator(fake).shape == (2, 1, 8, 8)


def test_cycle_loss_falls_over_a_few_steps(table, tmp_path):
    torch.manual_seed(0)
    trainer = CycleGanTrainer(GanTrainConfig(data=str(table), out=str(tmp_path / "run"), lr=1e-3, **TINY),
                              torch.device("cpu"))
    real_a, real_b = trainer.fixed_a[:2], trainer.fixed_b[:2]
    losses = [trainer.train_step(real_a, real_b) for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(list(step.values()))).all() for step in losses)
    assert losses[-1]["cycle"] < 0.75 * losses[0]["cycle"]


def test_run_writes_samples_checkpoint_and_synthesizes_training_cases(table, tmp_path):
    summary = train_gan(GanTrainConfig(data=str(table), out=str(tmp_path / "run"), epochs=1, max_steps=2,
                                       sample_every=1, **TINY))
    assert summary["step"] == 2
    assert len(list((tmp_path / "run" / "samples").glob("step_*.png"))) == 2
    assert load_checkpoint(tmp_path / "run")["step"] == 2
    assert load_cyclegan(tmp_path / "run" / "model").config.class_b == "melanoma"

    result = synthesize(tmp_path / "run" / "model", table, tmp_path / "synthetic", limit=3)
    synthetic = read_table(tmp_path / "synthetic")
    source = read_table(table).set_index("case_id")
    assert result["cases"] == len(synthetic) == 3
    assert synthetic["synthetic"].all() and (synthetic["split"] == "train").all()
    assert (synthetic["diagnosis_id"] == "melanoma").all()
    assert all(source.loc[origin, "split"] == "train" and source.loc[origin, "diagnosis_id"] == "melanocytic_nevus"
               for origin in synthetic["derived_from"])
    assert all(Path(p[0]).exists() for p in synthetic["image_paths"])


def test_the_splitter_keeps_synthetic_cases_in_train(table, tmp_path):
    train_gan(GanTrainConfig(data=str(table), out=str(tmp_path / "run"), epochs=1, max_steps=1, **TINY))
    synthesize(tmp_path / "run" / "model", table, tmp_path / "synthetic")
    import pandas as pd

    mixed = pd.concat([read_table(table), read_table(tmp_path / "synthetic")], ignore_index=True)
    for seed in range(3):
        splits = assign_splits(mixed, by="lesion", val=0.3, test=0.3, seed=seed)
        assert (splits[mixed["synthetic"].astype(bool)] == "train").all()
