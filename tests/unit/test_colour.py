"""Shades of Gray colour constancy: it neutralises a cast and travels with a trained model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dermkit.models.colour import ShadesOfGray, shades_of_gray
from dermkit.models.transforms import classifier_train_transform, eval_transform

PREPROCESS = {"size": 16, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic"}


def _scene(seed: int = 0) -> np.ndarray:
    """A grey-world scene: random greys and colours whose channel statistics are alike."""
    rng = np.random.default_rng(seed)
    return rng.uniform(40, 200, size=(32, 32, 3))


def test_a_colour_cast_image_is_neutralised():
    scene = _scene()
    cast = Image.fromarray(np.clip(scene * np.array([1.3, 1.0, 0.6]), 0, 255).astype(np.uint8))
    before = np.asarray(cast, dtype=float).mean(axis=(0, 1))
    after = np.asarray(shades_of_gray(cast, 6), dtype=float).mean(axis=(0, 1))
    assert before.max() / before.min() > 1.8  # a strong red cast
    assert after.max() / after.min() < 1.1  # the channels balanced again
    neutral = Image.fromarray(scene.astype(np.uint8))  # an already neutral image keeps its balance
    kept = np.asarray(shades_of_gray(neutral), dtype=float).mean(axis=(0, 1))
    assert kept.max() / kept.min() < 1.1
    with pytest.raises(ValueError, match="p > 0"):
        shades_of_gray(cast, 0)


def test_the_preprocessing_key_applies_it_in_the_evaluation_and_training_transforms():
    cast = Image.fromarray(np.clip(_scene(1) * np.array([1.3, 1.0, 0.6]), 0, 255).astype(np.uint8))
    plain = eval_transform(PREPROCESS)(cast)
    constant = eval_transform({**PREPROCESS, "shades_of_gray": 6.0})(cast)
    assert np.allclose(constant.numpy(), eval_transform(PREPROCESS)(ShadesOfGray(6.0)(cast)).numpy(), atol=1e-6)
    assert not np.allclose(plain.numpy(), constant.numpy(), atol=1e-2)
    channel_means = classifier_train_transform({**PREPROCESS, "shades_of_gray": 6.0})(cast).mean(dim=(1, 2))
    assert float(channel_means.max() - channel_means.min()) < 0.15  # the cast is gone before augmentation
