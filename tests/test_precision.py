"""precision=auto: bf16 autocast only where the hardware has native bf16 (else it is slower than fp32)."""

from __future__ import annotations

import pytest
import torch

import pgdat.precision as precision
from pgdat.errors import PgdatError


@pytest.mark.parametrize("avx512_bf16,amx,onednn,expected", [
    (False, False, True, False),  # AVX512 without bf16 instructions: oneDNN only emulates bf16
    (True, False, True, True),
    (False, True, True, True),
    (True, True, False, False),
])
def test_cpu_bf16_needs_native_instructions(monkeypatch, avx512_bf16, amx, onednn, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    assert precision.cpu_supports_bf16.__wrapped__() is expected


@pytest.mark.parametrize("native,expected", [(False, "fp32"), (True, "bf16")])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: native)
    assert precision.resolve_precision("auto", "cpu") == expected
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"  # explicit choices are kept


def test_fp16_on_cpu_and_unknown_names_are_errors():
    with pytest.raises(PgdatError, match="fp16 needs a GPU"):
        precision.resolve_precision("fp16", "cpu")
    with pytest.raises(PgdatError, match="valid: auto, fp32, bf16, fp16"):
        precision.resolve_precision("fp8", "cpu")


@pytest.mark.parametrize("avx512_bf16,amx,expected", [
    (False, False, ()), (True, False, ("AVX512-BF16",)), (True, True, ("AVX512-BF16", "AMX")),
])
def test_native_bf16_features_names_the_instruction_sets(monkeypatch, avx512_bf16, amx, expected):
    """What benchmarks print about a machine: which native bf16 instruction sets it has."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert precision.native_bf16_features() == expected
