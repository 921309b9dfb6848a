"""Out of memory, on any device: recognise an allocator failure, free what it left behind, find the largest batch
size that fits with a bounded number of probes, and tell the user which option to set.

CUDA, MPS and XPU raise ``torch.OutOfMemoryError``; the CPU allocator raises a ``RuntimeError`` ("DefaultCPUAllocator:
can't allocate memory" on Linux and macOS, "not enough memory" on Windows), oneDNN (mkldnn convolutions on the CPU)
"could not create a primitive" when its scratch memory cannot be allocated, C++ code "std::bad_alloc", Python a
``MemoryError``. On Linux with memory overcommit the kernel may instead kill a CPU process outright (the OOM killer),
which no Python code can catch.
"""

from __future__ import annotations

import gc
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import torch

from pgdat.errors import PgdatError

_OOM_TYPES = tuple({getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError})
_OOM_TEXT = ("DefaultCPUAllocator: can't allocate memory", "not enough memory", "out of memory",
             "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED", "std::bad_alloc", "Cannot allocate memory")
# oneDNN's allocation failure; "could not create a primitive descriptor" is an unsupported configuration, not memory
_ONEDNN_OOM = re.compile(r"could not create a primitive(?! descriptor)")
ON_OOM = ("raise", "halve")
T = TypeVar("T")


def is_oom(error: BaseException) -> bool:
    """True when ``error`` is an allocator failure (any device), False for every other exception."""
    if isinstance(error, (*_OOM_TYPES, MemoryError)):
        return True
    if not isinstance(error, RuntimeError):
        return False
    text = str(error)
    return any(t in text for t in _OOM_TEXT) or _ONEDNN_OOM.search(text) is not None


def free_memory(device: torch.device | str) -> None:
    """Collect garbage and return cached blocks to the device (CUDA, MPS) so that a retry starts clean."""
    gc.collect()
    kind = torch.device(device).type
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def fits(run: Callable[[int], object], batch_size: int, device: torch.device | str) -> bool:
    """Run ``run(batch_size)``; False (memory freed) if it ran out of memory, True if it completed.

    Any other exception propagates. The check happens after the ``except`` block has ended, so the traceback, and
    with it every tensor the failed attempt's frames held, is already released when memory is freed.
    """
    try:
        run(batch_size)
    except Exception as e:  # noqa: BLE001 - re-raised unless it is an allocator failure
        if not is_oom(e):
            raise
    else:
        return True
    free_memory(device)
    return False


def largest_fitting(probe: Callable[[int], object], failed: int, device: torch.device | str, *,
                    refine: int = 3) -> tuple[int, int]:
    """(largest batch size below ``failed`` for which ``probe`` fits, number of probes); 0 when even 1 does not fit.

    Halves from ``failed`` until a size fits, then bisects between it and the next (failing) size with at most
    ``refine`` more probes, so it runs at most log2(failed) + 1 + refine probes; the answer is at least half the
    true largest size and exact to within (failed / 2^(k+refine)) after k halvings.
    """
    b, hi, probes = failed // 2, failed, 0  # hi: the smallest size known not to fit
    while b >= 1:
        probes += 1
        if fits(probe, b, device):
            break
        b, hi = b // 2, b
    if b < 1:
        return 0, probes
    lo = b  # an odd size that failed leaves 2 * lo < hi: bisect up to the failing size itself, not to 2 * lo
    for _ in range(refine):
        if hi - lo <= 1:
            break
        mid, probes = (lo + hi) // 2, probes + 1
        lo, hi = (mid, hi) if fits(probe, mid, device) else (lo, mid)
    return lo, probes


@dataclass(frozen=True)
class BatchOption:
    """How a user sets a batch size: its name in messages and the fix to print (``fix.format(size)``)."""

    name: str
    fix: str

    def set_to(self, size: int) -> str:
        return self.fix.format(size)


TRAIN_BATCH = BatchOption("data.batch_size", "--set data.batch_size={}")
EVAL_BATCH = BatchOption("eval.batch_size", "--set eval.batch_size={}")
FINAL_BATCH = BatchOption("eval.final_batch_size", "--set eval.final_batch_size={}")
CLI_EVAL_BATCH = BatchOption("--batch-size", "--batch-size {}")
API_BATCH = BatchOption("batch_size", "batch_size={}")


def oom_error(device: torch.device | str, option: BatchOption, batch_size: int, what: str, largest: int
              ) -> PgdatError:
    """The one-line error for running out of memory at ``option=batch_size`` during ``what``."""
    where = f"out of memory on {device} at {option.name}={batch_size} ({what})"
    if largest < 1:
        return PgdatError(f"{where}, and even a batch of 1 does not fit: the model itself is too large for {device}; "
                          "use a smaller model, bf16 precision, or a device with more memory")
    return PgdatError(f"{where}; the largest that fits is ~{largest} — rerun with {option.set_to(largest)}")


class Batcher:
    """The batch size of a loop over N items that reacts to running out of memory.

    ``on_oom="raise"``: probe smaller batches (the loop's own step on a prefix of the failing batch) for the
    largest that fits, then raise a :class:`PgdatError` naming ``option`` and that size.
    ``on_oom="halve"``: warn and go on at half the size (repeatedly, down to 1); ``notes`` keeps the warnings.
    """

    def __init__(self, size: int, device: torch.device | str, option: BatchOption = API_BATCH,
                 on_oom: str = "raise") -> None:
        if on_oom not in ON_OOM:
            raise PgdatError(f"unknown on_oom '{on_oom}'; valid: {', '.join(ON_OOM)}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise PgdatError(f"{option.name} must be an integer >= 1 (got {size!r})")
        self.size, self.requested, self.device, self.option, self.on_oom = size, size, device, option, on_oom
        self.notes: list[str] = []

    def run(self, n: int, step: Callable[[int, int], object], what: str) -> None:
        """Call ``step(i, j)`` on consecutive slices [i, j) covering [0, n), each at most ``size`` long."""
        i = 0
        while i < n:
            b = min(self.size, n - i)
            prefix = partial(_prefix, step, i)  # step on [i, i + k)
            if fits(prefix, b, self.device):
                i += b
            else:
                self._shrink(b, prefix, what)

    def _shrink(self, failed: int, probe: Callable[[int], object], what: str) -> None:
        if self.on_oom == "raise":
            largest, _ = largest_fitting(probe, failed, self.device)
            raise oom_error(self.device, self.option, self.requested, what, largest)
        if failed <= 1:
            raise oom_error(self.device, self.option, self.requested, what, 0)
        self.size = failed // 2
        note = (f"out of memory on {self.device} at {self.option.name}={failed} ({what}): continuing with batch size "
                f"{self.size}; {self.option.set_to(self.size)} avoids the retry")
        self.notes.append(note)
        warnings.warn(note, stacklevel=3)


def _attempt(run: Callable[[int], T], k: int, device: torch.device | str) -> tuple[bool, T | None]:
    """(True, run(k)), or (False, None) with memory freed when it ran out of memory; other errors propagate."""
    try:
        return True, run(k)
    except Exception as e:  # noqa: BLE001 - re-raised unless it is an allocator failure
        if not is_oom(e):
            raise
    free_memory(device)
    return False, None


def on_prefix(run: Callable[[int], T], n: int, device: torch.device | str, option: BatchOption, what: str,
              on_oom: str = "raise") -> tuple[T, int]:
    """(``run(k)``, k) for a check that runs on the first k of n items at once: k = n when it fits. Out of memory:
    ``raise`` a PgdatError naming ``option`` and the largest k that fits; ``halve`` k with a warning and retry."""
    if on_oom not in ON_OOM:
        raise PgdatError(f"unknown on_oom '{on_oom}'; valid: {', '.join(ON_OOM)}")
    k = n
    while True:
        ok, result = _attempt(run, k, device)
        if ok:
            return result, k
        if on_oom == "raise" or k <= 1:
            largest = largest_fitting(run, k, device)[0] if on_oom == "raise" else 0
            raise oom_error(device, option, n, what, largest)
        failed, k = k, k // 2
        warnings.warn(f"out of memory on {device} at {option.name}={failed} ({what}): running them on the first {k} "
                      f"points; {option.set_to(k)} avoids the retry", stacklevel=3)


def _prefix(step: Callable[[int, int], object], start: int, k: int) -> object:
    return step(start, start + k)
