"""Cut trailing padding off token batches where that cannot change a text tower's output.

Captions are a third of CLIP's 77-token context, and a transformer's cost grows with the length,
so encoding a batch only up to its longest text makes caption encoding several times faster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def text_padding_id(text_tower: Any) -> int | None:
    """The pad token of a Hugging Face text tower whose attention and pooling mask padding, else None.

    Only there is cutting padding exact: open_clip's own text transformers may pool the last
    position, and its MaxPooler takes padded positions into account.
    """
    config = getattr(text_tower, "config", None)
    pooler = getattr(text_tower, "pooler", None)
    pad = getattr(config, "pad_token_id", None)
    if pad is None or pooler is None or type(pooler).__name__ == "MaxPooler":
        return None
    return int(pad)


def trim_padding(encode: Callable[[torch.Tensor], torch.Tensor], pad: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``encode`` over token batches cut after their longest text instead of the full context length."""

    def trimmed(tokens: torch.Tensor) -> torch.Tensor:
        used = (tokens != pad).any(dim=0).nonzero()
        length = int(used.max()) + 1 if len(used) else 1
        return encode(tokens[:, :length])

    return trimmed
