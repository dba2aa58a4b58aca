"""Contrastive losses (CLIP's softmax InfoNCE, SigLIP's pairwise sigmoid) over the *global* batch.

Features are gathered from every rank with their gradient, and every rank computes the loss of
the whole global batch. Each rank's local features then receive ``world_size`` times their true
gradient (every rank's copy of the loss back-propagates into them); averaging the gradients over
ranks (:func:`dermkit.train.distributed.average_gradients`) divides that factor out again, so a
DDP step equals the single-process step on the same global batch.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from dermkit.train.distributed import gather_with_grad


class LossFn(Protocol):
    def __call__(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                 logit_bias: torch.Tensor | None = None, *, gather: bool = True) -> torch.Tensor: ...


def _pair_logits(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                 gather: bool) -> torch.Tensor:
    """Scaled image×text similarities of the (global, when ``gather``) batch, shared by both losses."""
    if gather:
        image_features, text_features = gather_with_grad(image_features), gather_with_grad(text_features)
    return logit_scale * image_features @ text_features.T


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor | None = None,
    *,
    gather: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE: mean of image→text and text→image cross-entropy; matches on the diagonal.

    ``logit_scale`` is the already exponentiated temperature; ``logit_bias`` is unused by CLIP and
    accepted so both losses share one signature.
    """
    logits = _pair_logits(image_features, text_features, logit_scale, gather)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def siglip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor | None = None,
    *,
    gather: bool = True,
) -> torch.Tensor:
    """Pairwise sigmoid loss (Zhai et al. 2023): every pair is a binary match / no-match problem.

    Summed over all pairs and divided by the number of images, as in the paper.
    """
    if logit_bias is None:
        raise ValueError("the SigLIP loss needs a learned logit bias")
    logits = _pair_logits(image_features, text_features, logit_scale, gather) + logit_bias
    signs = 2 * torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(signs * logits).sum() / logits.shape[0]


LOSSES: dict[str, LossFn] = {"clip": clip_loss, "siglip": siglip_loss}
