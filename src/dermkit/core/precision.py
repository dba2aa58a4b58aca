"""The one place that decides the numeric precision a model runs in: ``auto``, ``bf16`` or ``fp32``.

``auto`` means bf16 only where the device runs it natively: a CUDA device with bf16, or a CPU
with AVX512-BF16 or AMX *and* a PyTorch CPU capability that uses them (``AVX512``). Everywhere
else it means fp32. On a CPU without native bf16, autocast emulates bf16 and is far slower than
fp32 (EfficientNet-Lite0 feature extraction: about 18x, see docs/results.md), so an explicit
``bf16`` there still runs as asked but warns once per process.

torch is imported lazily: ``core`` must stay importable without it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

from dermkit.core.errors import InputError

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
PRECISION_HELP = ("auto (default): bf16 only where this device runs it natively, else fp32; "
                  "bf16 on a CPU that emulates it warns (many times slower)")
# Measured with bench/extract_throughput.py under ATEN_CPU_CAPABILITY=avx2 (docs/results.md).
EMULATED_BF16_SLOWDOWN = "about 13-18x slower than fp32 for EfficientNet-Lite0"
# PyTorch CPU capabilities whose kernels use AVX512-BF16/AMX instructions.
_NATIVE_BF16_CAPABILITIES = ("AVX512",)
_warned_emulated = False


def cpu_capability() -> str:
    """``torch.backends.cpu.get_cpu_capability()`` (e.g. ``AVX2``, ``AVX512``); ``unknown`` without torch."""
    try:
        import torch
    except ImportError:
        return "unknown"
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_bf16_native() -> bool:
    """The probe: the CPU has bf16 instructions *and* PyTorch's kernels are built to use them here.

    The instruction check alone is not enough: under ``ATEN_CPU_CAPABILITY=avx2`` the CPU still
    reports AVX512-BF16 but every bf16 kernel runs the emulated AVX2 path.
    """
    import torch

    has_instructions = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return bool(has_instructions) and cpu_capability() in _NATIVE_BF16_CAPABILITIES


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` runs bf16 natively (fast), rather than not at all or emulated."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind == "cpu":
        return cpu_bf16_native()
    return False


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``bf16`` or ``fp32`` for a requested ``auto``/``bf16``/``fp32`` on ``device``.

    An explicit ``bf16`` on a CPU that emulates it is kept (the user asked) with a one-time warning.
    """
    global _warned_emulated
    if precision not in PRECISIONS:
        raise InputError(f"precision must be auto, bf16 or fp32, got {precision!r}", field="precision")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device) and not _warned_emulated:
        _warned_emulated = True
        warnings.warn(
            f"--precision bf16 on a device without native bf16 (CPU capability {cpu_capability()}): "
            f"bf16 is emulated here, {EMULATED_BF16_SLOWDOWN}; --precision auto would use fp32",
            RuntimeWarning,
            stacklevel=2,
        )
    return precision


def precision_record(precision: str) -> dict[str, Any]:
    """What a run summary, model card or benchmark JSON records about how the numbers were computed."""
    return {"precision": precision, "cpu_capability": cpu_capability()}
