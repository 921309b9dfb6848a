"""Mixed precision: pick an autocast dtype per device and open the matching context."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

from pgdat.errors import PgdatError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 arithmetic (AVX512-BF16 or AMX tiles), where bf16 autocast is faster.

    oneDNN's own flag (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) is also true on AVX512 CPUs that only
    emulate bf16, and on CPUs without native bf16 autocast is several times slower than fp32 (measured on an
    AVX2 EPYC: a PreAct ResNet-18 input-gradient pass 6-15x slower; benchmarks/README.md), so only the native
    instructions count. Probed once per process.
    """
    try:
        return bool(native_bf16_features()) and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16_features() -> tuple[str, ...]:
    """The native bf16 instruction sets this CPU has, of ``AVX512-BF16`` and ``AMX`` (empty: bf16 is emulated)."""
    probes = (("AVX512-BF16", "_is_avx512_bf16_supported"), ("AMX", "_is_amx_tile_supported"))
    try:
        return tuple(name for name, probe in probes if hasattr(torch.cpu, probe) and getattr(torch.cpu, probe)())
    except RuntimeError:
        return ()


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """Turn ``auto`` into a concrete choice for ``device`` and check the others are possible there.

    auto: bf16 on CUDA devices that support it (else fp16) and on CPUs with native bf16 (:func:`cpu_supports_bf16`);
    fp32 otherwise.
    """
    if precision not in PRECISIONS:
        raise PgdatError(f"unknown precision '{precision}'; valid: {', '.join(PRECISIONS)}")
    dev = torch.device(device)
    if precision == "auto":
        if dev.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if dev.type == "cpu" and cpu_supports_bf16() else "fp32"
    if precision == "fp16" and dev.type == "cpu":
        raise PgdatError("precision fp16 needs a GPU; on a CPU use precision=bf16 or fp32")
    return precision


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str) -> Iterator[None]:
    """Autocast context for a resolved precision (``fp32`` is a no-op)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision]):
        yield
