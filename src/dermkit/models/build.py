"""Build an open_clip model from a config dict, so dermkit's families are genuine open_clip models.

A family written as an open_clip ``model_cfg`` is exported, reloaded by stock open_clip and trained
by open_clip's own loop without any dermkit code in between.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dermkit.core.optional import require

if TYPE_CHECKING:
    import torch


def build_open_clip(
    model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any], seed: int | None = None
) -> torch.nn.Module:
    """Instantiate ``model_cfg`` as open_clip's factory would (CLIP or CustomTextCLIP), random init.

    ``seed`` makes the initialisation reproducible without disturbing the caller's global RNG.
    """
    open_clip = require("open_clip", "torch", "vision-language models")
    torch = require("torch", "torch")
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    cfg = dict(model_cfg)
    custom_text = cfg.pop("custom_text", False) or "hf_model_name" in cfg["text_cfg"]
    model_class = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = model_class(**cfg)
    open_clip.set_model_preprocess_cfg(model, merge_preprocess_dict(PreprocessCfg(), preprocess_cfg))
    return model
