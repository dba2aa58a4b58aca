"""``tiny-clip``: a seeded, random-init open_clip CLIP small enough for every test suite to build."""

from __future__ import annotations

from dermkit.core.optional import require
from dermkit.models.build import build_open_clip
from dermkit.models.loaded import LoadedModel
from dermkit.models.names import register_model

IMAGE_SIZE = 32
CONTEXT_LENGTH = 16

MODEL_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8,
                   "mlp_ratio": 2.0},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2,
                 "mlp_ratio": 2.0},
    "custom_text": True,  # text tower as ``model.text``, like every dermkit model
}
PREPROCESS_CFG = {"size": IMAGE_SIZE}


@register_model("tiny-clip")
def tiny_clip(device: str = "cpu", seed: int = 0) -> LoadedModel:
    """Two builds with the same ``seed`` have identical weights; untrained, so only for tests."""
    open_clip = require("open_clip", "torch", "vision-language models")
    model = build_open_clip(MODEL_CFG, PREPROCESS_CFG, seed=seed)
    tokenizer = open_clip.SimpleTokenizer(context_length=CONTEXT_LENGTH)
    return LoadedModel.assemble(model, MODEL_CFG, tokenizer, name="tiny-clip", device=device)
