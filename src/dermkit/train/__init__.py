"""Training: contrastive losses, the CLIP/SigLIP loop, distributed helpers and exact-resume checkpoints.

>>> train_clip(ClipTrainConfig(model="tiny-clip", data=["tables/ham"], out="runs/try", epochs=1))
"""

from dermkit.train.clip import ClipTrainConfig, train_clip

__all__ = ["ClipTrainConfig", "train_clip"]
