"""The balanced decision rule: logit adjustment for the training class mix, tau chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest

from dermkit.core.errors import InputError
from dermkit.metrics import balanced_accuracy
from dermkit.train.decision import fit_logit_adjustment, training_prior


def test_training_prior_follows_the_loss_mix():
    counts = np.array([80, 15, 5, 0])
    assert training_prior(counts, None, "natural") == pytest.approx([0.8, 0.15, 0.05, 0])
    assert training_prior(counts, None, "balanced") == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    inverse = 1 / np.maximum(counts, 1)
    assert training_prior(counts, inverse * (counts > 0), "natural") == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    with pytest.raises(InputError):
        training_prior([0, 0], None, "natural")


def test_adjustment_undoes_a_majority_bias_and_keeps_argmax_when_nothing_is_gained():
    rng = np.random.default_rng(0)
    prior = np.array([0.8, 0.15, 0.05])
    labels = np.repeat([0, 1, 2], 100)
    likelihood = np.eye(3)[labels] * 1.5 + rng.normal(0, 1, (300, 3))  # log p(x | class) up to a constant
    log_probs = likelihood + np.log(prior)  # what a model trained on the skewed mix scores
    fitted = fit_logit_adjustment(log_probs, labels, prior)
    assert fitted["tau"] > 0
    adjusted = log_probs + np.asarray(fitted["bias"])
    assert balanced_accuracy(adjusted, labels) > balanced_accuracy(log_probs, labels) + 0.05
    uniform = fit_logit_adjustment(likelihood, labels, np.full(3, 1 / 3))  # nothing to correct: ties -> tau 0
    assert uniform["tau"] == 0 and uniform["bias"] == pytest.approx([0, 0, 0])
