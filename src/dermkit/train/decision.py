"""A balanced decision rule for classifiers trained on imbalanced data: logit adjustment fitted on validation.

A model trained on a skewed class mix learns p(class | image) under that mix, while balanced accuracy
(the mean of per-class sensitivities) rewards ranking by p(image | class): the logits minus τ × the
log of the class mix the loss saw (Menon et al. 2021, "Long-tail learning via logit adjustment").
τ = 0 is the plain argmax; τ is chosen on the validation split, never on the test split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dermkit.core.errors import InputError
from dermkit.metrics import balanced_accuracy

TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def training_prior(counts: Sequence[float] | np.ndarray, class_weight: Sequence[float] | np.ndarray | None,
                   sampling: str) -> np.ndarray:
    """The class mix the training loss saw: counts × class weights, uniform under balanced sampling."""
    counts = np.asarray(counts, dtype=np.float64)
    mix = np.where(counts > 0, 1.0, 0.0) if sampling == "balanced" else counts.copy()
    if class_weight is not None:
        mix = mix * np.asarray(class_weight, dtype=np.float64)
    if mix.sum() <= 0:
        raise InputError("no training cases to estimate the class mix from", field="counts")
    return mix / mix.sum()


def fit_logit_adjustment(log_probs: np.ndarray, labels: np.ndarray, prior: np.ndarray,
                         taus: Sequence[float] = TAUS) -> dict[str, object]:
    """The τ with the best validation balanced accuracy (the smallest τ on ties) and its per-class bias.

    ``log_probs`` are the model's validation log-probabilities (N×C); classes absent from training
    (prior 0) get no correction rather than an infinite one.
    """
    log_prior = np.log(np.where(prior > 0, prior, 1.0))
    scores = {float(tau): balanced_accuracy(log_probs - tau * log_prior, labels) for tau in taus}
    best = max(scores, key=lambda tau: (round(scores[tau], 12), -tau))
    return {"tau": best, "bias": (-best * log_prior).tolist(), "validation_balanced_accuracy": scores}
