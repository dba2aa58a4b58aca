"""The stateful wrapper accumulates batches and equals the functional metric on all of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dermkit.core import InputError
from dermkit.metrics import Metric, macro_auroc, top_k_accuracy


def test_batches_accumulate_to_the_full_metric() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    probs = rng.dirichlet(np.ones(3), 90)
    metric = Metric(macro_auroc)
    for start in range(0, 90, 32):
        metric.update(torch.from_numpy(probs[start : start + 32]), torch.from_numpy(labels[start : start + 32]))
    assert metric.compute() == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    metric.reset()
    metric.update(probs[:45], labels[:45])
    assert metric.compute() == pytest.approx(macro_auroc(probs[:45], labels[:45]))


def test_keyword_arguments_reach_the_metric() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    labels = np.array([1, 2])
    metric = Metric(top_k_accuracy, k=2)
    metric.update(probs, labels)
    assert metric.compute() == 0.5


def test_misuse_is_reported() -> None:
    metric = Metric(macro_auroc)
    with pytest.raises(InputError):
        metric.compute()
    with pytest.raises(InputError):
        metric.update(np.zeros((3, 2)), np.zeros(2))
