"""Frozen towers: split an open_clip tower at its projection, so a frozen trunk is encoded once.

When a tower's trunk is frozen, its output for a given input never changes, so its features come
from :mod:`dermkit.models.feature_cache` (computed without augmentation: the frozen side sees the
evaluation preprocessing) and only the projection head runs during training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from dermkit.core.errors import DermkitError
from dermkit.models.loaded import Encoder

# Where open_clip keeps each tower's projection: timm image towers (``head``), vision and HF text
# transformers (``proj``), open_clip's built-in text transformer (``text_projection``).
PROJECTION_ATTRS = {"image": ("head", "proj"), "text": ("proj", "text_projection")}
# Parameters of the model itself that belong to neither tower.
SHARED_PARAMETERS = ("logit_scale", "logit_bias")



def _in_text_tower(name: str) -> bool:
    """Whether a name in the state of open_clip's CLIP (which keeps its text modules on the model itself)
    belongs to the text tower."""
    return not name.startswith("visual.") and name not in SHARED_PARAMETERS


class MatrixProjection(nn.Module):
    """A bare projection matrix (``x @ W``) as a module, sharing the tower's parameter."""

    def __init__(self, weight: nn.Parameter) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


@dataclass
class Tower:
    """One side of an open_clip model, split into a trunk and the projection head after it."""

    side: str
    holder: nn.Module  # the module whose attribute ``projection`` is the head
    projection: str
    encode: Encoder
    parameters: list[nn.Parameter]

    @classmethod
    def of(cls, model: nn.Module, side: str) -> Tower:
        # open_clip's models are untyped: to mypy every attribute of an nn.Module is Tensor | Module,
        # so the towers are fetched as submodules and the encoders (methods of CLIP/CustomTextCLIP) cast.
        if side == "image":
            holder, encode = model.get_submodule("visual"), cast(Encoder, model.encode_image)
            params = list(holder.parameters())
        elif hasattr(model, "text"):  # open_clip's CustomTextCLIP
            holder, encode = model.get_submodule("text"), cast(Encoder, model.encode_text)
            params = list(holder.parameters())
        else:  # open_clip's CLIP keeps the text transformer's modules on the model itself
            holder, encode = model, cast(Encoder, model.encode_text)
            params = [p for name, p in model.named_parameters() if _in_text_tower(name)]
        for name in PROJECTION_ATTRS[side]:
            if getattr(holder, name, None) is not None:
                return cls(side, holder, name, encode, params)
        raise DermkitError(f"cannot find the {side} projection of {type(holder).__name__} "
                           f"(looked for {PROJECTION_ATTRS[side]})")

    def head(self) -> nn.Module:
        """The projection as a module mapping trunk features to the joint embedding space."""
        value = getattr(self.holder, self.projection)
        return value if isinstance(value, nn.Module) else MatrixProjection(value)

    def trunk_parameters(self) -> list[nn.Parameter]:
        head_ids = {id(p) for p in self.head().parameters()}
        return [p for p in self.parameters if id(p) not in head_ids]

    def trunk_state(self) -> dict[str, torch.Tensor]:
        """The trunk's parameters and buffers by name (BatchNorm statistics change its features too),
        what the feature cache fingerprints."""
        with self.without_projection():
            state = self.holder.state_dict()
        if hasattr(self.holder, "visual"):  # open_clip's CLIP: the text tower's holder is the whole model
            return {name: tensor for name, tensor in state.items() if _in_text_tower(name)}
        return state

    @contextlib.contextmanager
    def without_projection(self) -> Iterator[None]:
        """Temporarily remove the head so the tower's own forward returns trunk features."""
        value = getattr(self.holder, self.projection)
        # open_clip skips a ``None`` matrix projection but calls a module head unconditionally.
        setattr(self.holder, self.projection, nn.Identity() if isinstance(value, nn.Module) else None)
        try:
            yield
        finally:
            setattr(self.holder, self.projection, value)

    def encode_trunk(self, inputs: torch.Tensor) -> torch.Tensor:
        with self.without_projection():
            return self.encode(inputs)
