"""AdamW with torch's fused kernel where this torch has one for the device, else its default kernel.

The fused kernel updates every parameter in one pass instead of a dozen small operations per
tensor (CPU since torch 2.4). It agrees with the default kernel to rounding (about 1e-7 after
twenty steps), not bit for bit, so it is a choice a run records (``--no-fused-optimizer`` keeps the
default kernel). Whether the kernel exists is probed with one step on a one-element tensor, since
torch only checks the device at the first real step.
"""

from __future__ import annotations

from typing import Any

import torch


def fused_adamw_supported(device: torch.device) -> bool:
    """Whether ``AdamW(fused=True)`` steps float32 parameters on ``device`` with this torch."""
    probe = torch.zeros(1, device=device, requires_grad=True)
    probe.grad = torch.zeros_like(probe)
    try:
        torch.optim.AdamW([probe], fused=True).step()
    except (RuntimeError, TypeError):  # no fused kernel for the device (TypeError: a torch without `fused`)
        return False
    return True


def adamw(groups: list[dict[str, Any]], *, weight_decay: float, fused: bool) -> torch.optim.AdamW:
    """AdamW over parameter ``groups``, fused when asked and supported on their device (else torch's default)."""
    device = groups[0]["params"][0].device
    use_fused = fused and fused_adamw_supported(device)
    return torch.optim.AdamW(groups, weight_decay=weight_decay, fused=True if use_fused else None)
