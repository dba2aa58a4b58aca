"""The one object every consumer of a model receives: the network plus what it needs to be fed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dermkit.core.errors import InputError

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from dermkit.models.card import ModelCard

# open_clip keeps the preprocess config on ``model.visual``; we keep the architecture config on the
# model the same way, so a bare (e.g. DDP-unwrapped) module can still be exported.
MODEL_CFG_ATTR = "open_clip_model_cfg"
Encoder = Callable[["torch.Tensor"], "torch.Tensor"]  # a tower's encode_image / encode_text


@dataclass
class LoadedModel:
    """An open_clip-compatible model with its transforms, tokenizer and (when known) model card.

    ``model`` answers ``encode_image``, ``encode_text`` and ``forward(image, text)`` (an open_clip
    ``output_dict`` dict with ``image_features``, ``text_features`` and ``logit_scale``).
    """

    model: torch.nn.Module
    preprocess_train: Callable[[Image], torch.Tensor]
    preprocess_eval: Callable[[Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    name: str
    embed_dim: int
    card: ModelCard | None = None

    @property
    def model_cfg(self) -> dict[str, Any]:
        """The open_clip model config this model was built from (what an export writes)."""
        return model_cfg_of(self.model)

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        """open_clip's preprocess config (size, mean, std, interpolation, resize mode)."""
        from open_clip import get_model_preprocess_cfg

        return copy.deepcopy(get_model_preprocess_cfg(self.model))

    @classmethod
    def assemble(
        cls,
        model: torch.nn.Module,
        model_cfg: dict[str, Any],
        tokenizer: Callable[[list[str]], torch.Tensor],
        name: str,
        device: str = "cpu",
        card: ModelCard | None = None,
    ) -> LoadedModel:
        """Finish any open_clip model the same way, whatever its source, and wrap it.

        The model must already carry open_clip's preprocess config on ``model.visual``.
        """
        from open_clip import get_model_preprocess_cfg

        from dermkit.models.transforms import eval_transform, train_transform

        setattr(model, MODEL_CFG_ATTR, copy.deepcopy(model_cfg))
        model.output_dict = True  # type: ignore[assignment]  # torch types Module.__setattr__ for tensors and modules only
        model.to(device).eval()
        preprocess_cfg = get_model_preprocess_cfg(model)
        return cls(
            model=model,
            preprocess_train=train_transform(preprocess_cfg),
            preprocess_eval=eval_transform(preprocess_cfg),
            tokenizer=tokenizer,
            name=name,
            embed_dim=int(model_cfg["embed_dim"]),
            card=card,
        )


def model_cfg_of(model: torch.nn.Module) -> dict[str, Any]:
    """The model config dermkit attached to ``model`` when it was built or loaded."""
    cfg = getattr(model, MODEL_CFG_ATTR, None)
    if cfg is None:
        raise InputError("this model was not built by dermkit.models.load_model, so its open_clip config is unknown")
    return copy.deepcopy(cfg)


# open_clip's initial logit scale (1 / 0.07), for models that carry none.
DEFAULT_LOGIT_SCALE = 1 / 0.07


def logit_scale(loaded: LoadedModel) -> float:
    """The model's learned softmax temperature (open_clip stores its log), else CLIP's initial one."""
    value = getattr(loaded.model, "logit_scale", None)
    return DEFAULT_LOGIT_SCALE if value is None else float(value.detach().exp())
