"""Supervised losses, class weights, balanced sampling and the shared sensitivity definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dermkit.core.errors import InputError
from dermkit.metrics import rates_at_threshold
from dermkit.train.imbalance import balanced_draw, choose_synthetic, epoch_indices, synthetic_quota
from dermkit.train.losses_supervised import class_balanced_weights, focal_loss, soft_cross_entropy


@pytest.fixture
def logits_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(12, 4, generator=generator) * 3, torch.randint(0, 4, (12,), generator=generator)


def test_focal_loss_is_cross_entropy_at_gamma_zero_without_alpha(logits_and_labels):
    logits, labels = logits_and_labels
    assert torch.allclose(focal_loss(logits, labels, gamma=0.0, alpha=None), F.cross_entropy(logits, labels))


def test_focal_loss_down_weights_easy_examples():
    easy = torch.tensor([[6.0, 0.0]])
    hard = torch.tensor([[0.2, 0.0]])
    label = torch.tensor([0])
    ratio_easy = focal_loss(easy, label, gamma=2.0) / F.cross_entropy(easy, label)
    ratio_hard = focal_loss(hard, label, gamma=2.0) / F.cross_entropy(hard, label)
    assert ratio_easy < 0.01 < ratio_hard < 1


def test_focal_scalar_alpha_weights_the_positive_class_of_two():
    logits, labels = torch.tensor([[0.3, 1.0], [2.0, -1.0]]), torch.tensor([1, 0])
    expected = (0.25 * F.cross_entropy(logits[:1], labels[:1]) + 0.75 * F.cross_entropy(logits[1:], labels[1:])) / 2
    assert torch.allclose(focal_loss(logits, labels, gamma=0.0, alpha=0.25), expected)
    with pytest.raises(InputError, match="alpha"):
        focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), alpha=0.25)


def test_soft_cross_entropy_equals_cross_entropy_on_one_hot(logits_and_labels):
    logits, labels = logits_and_labels
    one_hot = F.one_hot(labels, 4).float()
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    assert torch.allclose(soft_cross_entropy(logits, one_hot), F.cross_entropy(logits, labels))
    assert torch.allclose(soft_cross_entropy(logits, one_hot, weight), F.cross_entropy(logits, labels, weight=weight))
    assert torch.allclose(soft_cross_entropy(logits, one_hot, label_smoothing=0.1),
                          F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_soft_cross_entropy_rewards_the_weighted_differential():
    target = torch.tensor([[0.7, 0.3, 0.0]])
    matching = torch.log(torch.tensor([[0.7, 0.3, 1e-6]]))
    top_only = torch.log(torch.tensor([[0.98, 0.01, 0.01]]))
    assert soft_cross_entropy(matching, target) < soft_cross_entropy(top_only, target)


def test_class_balanced_weights():
    counts = np.array([1000, 100, 10, 0])
    assert np.allclose(class_balanced_weights(counts, beta=0.0), [1, 1, 1, 0])
    inverse = class_balanced_weights(counts, kind="inverse")
    assert np.allclose(inverse[:3] / inverse[2], [0.01, 0.1, 1]) and inverse[3] == 0
    effective = class_balanced_weights(counts, beta=0.999)
    assert effective[0] < effective[1] < effective[2] and np.isclose(effective[:3].mean(), 1)
    assert class_balanced_weights(counts, beta=0.999999)[2] / class_balanced_weights(counts, beta=0.999999)[0] > 90


def test_balanced_draw_evens_out_classes_and_is_reproducible():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    draw = balanced_draw(labels, seed=3, epoch=1)
    shares = np.bincount(labels[draw], minlength=3) / len(draw)
    assert np.all(np.abs(shares - 1 / 3) < 0.05)
    assert np.array_equal(draw, balanced_draw(labels, seed=3, epoch=1))
    assert not np.array_equal(draw, balanced_draw(labels, seed=3, epoch=2))
    assert np.array_equal(epoch_indices(labels, "natural", 0, 0), np.arange(1000))


def test_synthetic_quota_follows_the_ratio_and_caps_at_what_exists():
    real = [0] * 100 + [1] * 20
    synthetic = [1] * 15
    assert synthetic_quota(real, synthetic, 0.5) == {1: 10}
    assert synthetic_quota(real, synthetic, 2.0) == {1: 15}
    chosen = choose_synthetic(synthetic, {1: 10}, seed=0)
    assert len(chosen) == 10 and len(set(chosen)) == 10


def test_sensitivity_is_tp_over_tp_plus_fn_not_npv():
    # Hand-built: TP 3, FN 1, FP 2, TN 4 at threshold 0.5. MelaNet reported NPV as "sensitivity".
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.55, 0.1, 0.2, 0.3, 0.4])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    rates = rates_at_threshold(scores, labels, 0.5)
    assert float(rates.sensitivity) == pytest.approx(3 / 4)
    assert float(rates.npv) == pytest.approx(4 / 5)
    assert float(rates.specificity) == pytest.approx(4 / 6)
