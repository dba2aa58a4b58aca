"""Training: contrastive losses, the CLIP/SigLIP loop, distributed helpers and exact-resume checkpoints.

>>> train_clip(ClipTrainConfig(model="tiny-clip", data=["tables/ham"], out="runs/try", epochs=1))

The face is lazy (PEP 562): ``from dermkit.train import distributed`` must not load the CLIP
trainer, so ``ClipTrainConfig`` and ``train_clip`` are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dermkit.train.clip import ClipTrainConfig, train_clip

_LAZY = {"ClipTrainConfig": "dermkit.train.clip", "train_clip": "dermkit.train.clip"}

__all__ = ["ClipTrainConfig", "train_clip"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
