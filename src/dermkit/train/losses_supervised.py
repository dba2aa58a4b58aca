"""Supervised classification losses for imbalanced, soft-labelled data.

- :func:`soft_cross_entropy`: CE against a soft target (a weighted differential), optional class
  weights and label smoothing; on one-hot targets it equals ``F.cross_entropy`` with the same
  weights (a weighted mean over the batch, as PyTorch normalises it).
- :func:`focal_loss` (Lin et al. 2017): down-weights easy examples by ``(1 - p_t)^γ``; α is a
  per-class weight, or for two classes the positive-class weight (α, 1 − α), as in RetinaNet and
  MelaNet. With γ = 0 and α None it is plain CE.
- :func:`class_balanced_weights` (Cui et al. 2019): weights ∝ 1 / effective number of samples,
  ``(1 − β^n) / (1 − β)``; β → 1 gives inverse frequency, β = 0 no weighting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dermkit.core.errors import InputError

CLASS_WEIGHTINGS = ("none", "inverse", "effective")


def smooth(target: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Soft targets mixed with the uniform distribution."""
    return target * (1 - label_smoothing) + label_smoothing / target.shape[1] if label_smoothing else target


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                       label_smoothing: float = 0.0, normaliser: torch.Tensor | None = None) -> torch.Tensor:
    """Mean CE of ``logits`` (N×C) against soft ``target`` rows (N×C, each summing to 1).

    With class weights it is the weighted mean, divided by the batch's total target weight, or by
    ``normaliser`` when given: under DDP the mean over ranks of their totals, so that the ranks'
    averaged gradients equal one process's on the whole global batch.
    """
    target = smooth(target, label_smoothing)
    log_probs = F.log_softmax(logits.float(), dim=1)
    if weight is None:
        return -(target * log_probs).sum(dim=1).mean()
    weighted = target * weight.unsqueeze(0)
    total = weighted.sum() if normaliser is None else normaliser
    return -(weighted * log_probs).sum() / total.clamp_min(1e-12)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               alpha: float | Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
    """Mean focal loss; ``target`` holds class indices (N) or soft rows (N×C, then per-class terms
    are weighted by the target)."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    soft = target if target.ndim == 2 else F.one_hot(target, logits.shape[1]).to(log_probs.dtype)
    modulating = (1 - log_probs.exp()).pow(gamma)
    per_class = -soft * modulating * log_probs
    if alpha is not None:
        per_class = per_class * _alpha_vector(alpha, logits.shape[1], logits.device).unsqueeze(0)
    return per_class.sum(dim=1).mean()


def _alpha_vector(alpha: float | Sequence[float] | torch.Tensor, n_classes: int, device: torch.device) -> torch.Tensor:
    if isinstance(alpha, (int, float)):
        if n_classes != 2:
            raise InputError(f"a scalar focal alpha weights the positive of two classes; got {n_classes} classes "
                             f"(pass one alpha per class)", field="focal_alpha")
        return torch.tensor([1 - alpha, alpha], device=device)
    vector = torch.as_tensor(alpha, dtype=torch.float32, device=device)
    if vector.shape != (n_classes,):
        raise InputError(f"focal alpha needs {n_classes} values, got {tuple(vector.shape)}", field="focal_alpha")
    return vector


def class_balanced_weights(counts: Sequence[float] | np.ndarray, beta: float = 0.999,
                           kind: str = "effective") -> np.ndarray:
    """Per-class loss weights from class counts, normalised to mean 1 over classes with cases.

    ``kind``: ``effective`` (Cui et al., with ``beta``), ``inverse`` (1/n) or ``none`` (all 1).
    A class without cases gets weight 0 (it cannot appear in a target).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if kind not in CLASS_WEIGHTINGS:
        raise InputError(f"unknown class weighting {kind!r}; choose from {', '.join(CLASS_WEIGHTINGS)}",
                         field="class_weights")
    present = counts > 0
    weights = np.zeros_like(counts)
    if kind == "none":
        weights[present] = 1.0
    elif kind == "inverse":
        weights[present] = 1.0 / counts[present]
    else:
        if not 0 <= beta < 1:
            raise InputError(f"beta must lie in [0, 1), got {beta}", field="beta")
        weights[present] = (1 - beta) / (1 - np.power(beta, counts[present]))
    return weights / weights[present].mean() if present.any() else weights
