"""Write a module's weights as safetensors, readable by whoever may read the folder around them.

safetensors writes through a private temporary file, so its output is mode 0600 whatever the
umask: another user, or a container running under another uid, could not load an export or a
trained model. Every weights file dermkit writes goes through :func:`save_weights`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dermkit.core.optional import require

if TYPE_CHECKING:
    import torch


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """The module's state dict (detached, on the CPU) at ``path``, with the mode ``open()`` gives a new file."""
    safetensors_torch = require("safetensors.torch", "torch", "writing model weights")
    state = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    safetensors_torch.save_file(state, str(path))
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
