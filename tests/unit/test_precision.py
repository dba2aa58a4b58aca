"""The one precision decision (dermkit.core.precision), driven both ways by patching its probe."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from dermkit.core import precision as P
from dermkit.core.errors import InputError

torch = pytest.importorskip("torch")
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "_warned_emulated", False)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_follows_the_cpu_probe(monkeypatch: pytest.MonkeyPatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(P, "cpu_bf16_native", lambda: native)
    assert P.resolve_precision("auto", "cpu") == expected
    assert P.resolve_precision("fp32", "cpu") == "fp32"


def test_instructions_without_a_capability_that_uses_them_are_not_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(P, "cpu_capability", lambda: "AVX2")
    assert not P.cpu_bf16_native()
    monkeypatch.setattr(P, "cpu_capability", lambda: "AVX512")
    assert P.cpu_bf16_native()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not P.cpu_bf16_native()


def test_explicit_bf16_where_emulated_is_kept_and_warns_once(monkeypatch: pytest.MonkeyPatch,
                                                              fresh_warning: None) -> None:
    monkeypatch.setattr(P, "cpu_bf16_native", lambda: False)
    with pytest.warns(RuntimeWarning, match=r"emulated here, about 13-18x slower"):
        assert P.resolve_precision("bf16", "cpu") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.resolve_precision("bf16", "cpu") == "bf16"  # once per process


def test_explicit_bf16_where_native_does_not_warn(monkeypatch: pytest.MonkeyPatch, fresh_warning: None) -> None:
    monkeypatch.setattr(P, "cpu_bf16_native", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.resolve_precision("bf16", "cpu") == "bf16"


def test_cuda_uses_its_own_bf16_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "cpu_bf16_native", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert P.resolve_precision("auto", torch.device("cuda")) == expected


def test_unknown_precision_is_an_input_error() -> None:
    with pytest.raises(InputError, match="precision must be auto, bf16 or fp32"):
        P.resolve_precision("fp16")


def test_the_record_names_precision_and_capability() -> None:
    assert P.precision_record("fp32") == {"precision": "fp32",
                                          "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def _fresh(code: str, **env: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(SRC), **env})
    return result.stdout.strip()


def test_avx2_capability_makes_auto_fp32_in_a_fresh_process() -> None:
    out = _fresh("from dermkit.core.precision import resolve_precision, cpu_capability;"
                 "print(cpu_capability(), resolve_precision('auto'))",
                 ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    assert out == "AVX2 fp32"


def test_core_precision_imports_no_other_dermkit_package_nor_torch() -> None:
    out = _fresh("import sys, dermkit.core.precision;"
                 "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('dermkit.')))")
    assert out == "['dermkit.core', 'dermkit.core.atomic', 'dermkit.core.errors', 'dermkit.core.optional', " \
                  "'dermkit.core.precision']"
