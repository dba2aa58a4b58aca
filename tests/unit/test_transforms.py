"""Fine-tuning augmentations: ``light`` turns and crops but keeps colour; ``strong`` does not. Test-time views."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from PIL import Image

from dermkit.core.errors import InputError
from dermkit.models.transforms import (
    TTA_VIEW_COUNTS,
    RandomQuarterTurn,
    check_tta,
    classifier_train_transform,
    dihedral_view,
)

PREPROCESS = {"size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic"}


def _hue_of_mean(tensor: torch.Tensor) -> float:
    rgb = (tensor * 0.5 + 0.5).clamp(0, 1).mean(dim=(1, 2)).tolist()
    return colorsys.rgb_to_hsv(*rgb)[0]


def test_quarter_turns_give_all_four_orientations_pixel_exactly() -> None:
    image = Image.fromarray(np.arange(27, dtype=np.uint8).reshape(3, 3, 3) * 9)  # every pixel differs: no symmetry
    expected = {np.rot90(np.asarray(image), k).tobytes() for k in range(4)}
    torch.manual_seed(0)
    seen = {np.asarray(RandomQuarterTurn()(image)).tobytes() for _ in range(64)}
    assert seen == expected


def test_light_augmentation_keeps_the_hue_that_strong_augmentation_changes() -> None:
    bluish = Image.new("RGB", (48, 48), (40, 70, 180))  # a blue-grey veil's hue
    hue = colorsys.rgb_to_hsv(40 / 255, 70 / 255, 180 / 255)[0]
    torch.manual_seed(0)
    light = classifier_train_transform(PREPROCESS, "light")
    strong = classifier_train_transform(PREPROCESS, "strong")
    light_hues = [_hue_of_mean(light(bluish)) for _ in range(40)]
    strong_hues = [_hue_of_mean(strong(bluish)) for _ in range(40)]
    assert max(abs(h - hue) for h in light_hues) < 0.01
    assert max(abs(h - hue) for h in strong_hues) > 0.03


def test_light_augmentation_varies_framing_and_returns_the_model_input_shape() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    torch.manual_seed(0)
    light = classifier_train_transform(PREPROCESS, "light")
    first, second = light(image), light(image)
    assert first.shape == second.shape == (3, 32, 32)
    assert not torch.equal(first, second)


def test_unknown_augmentation_names_the_choices() -> None:
    with pytest.raises(ValueError, match="light, strong"):
        classifier_train_transform(PREPROCESS, "heavy")


def test_the_eight_test_time_views_are_the_symmetries_of_the_square_identity_and_mirror_first() -> None:
    image = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3)  # no symmetry of its own
    as_array = image.numpy()
    symmetries = {np.ascontiguousarray(np.rot90(a, k, axes=(1, 2))).tobytes()
                  for k in range(4) for a in (as_array, as_array[:, :, ::-1])}
    views = [dihedral_view(image, v).numpy() for v in range(8)]
    assert {np.ascontiguousarray(v).tobytes() for v in views} == symmetries and len(symmetries) == 8
    assert np.array_equal(views[0], as_array) and np.array_equal(views[1], as_array[:, :, ::-1])
    batch = torch.stack([image, image + 100])  # leading dimensions are carried along
    assert torch.equal(dihedral_view(batch, 5)[1], dihedral_view(image + 100, 5))


def test_unsupported_view_counts_name_tta() -> None:
    assert [check_tta(n) for n in TTA_VIEW_COUNTS] == [1, 2, 4, 8]
    with pytest.raises(InputError, match="--tta takes 1, 2, 4, 8") as error:
        check_tta(3)
    assert error.value.field == "tta"
