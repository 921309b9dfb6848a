"""CPU out of memory (oneDNN's "could not create a primitive", std::bad_alloc, MemoryError) is recognised in every
evaluation path, masking and sanity checks included, and answered like the GPU case; a model that outputs argmax
labels is a one-line error, not a traceback deep in an attack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.eval import evaluate, sanity_checks
from pgdat.eval.masking import masking_checks
from pgdat.memory import CLI_EVAL_BATCH, is_oom
from tests.conftest import TinyNet, make_tiny_data

ONEDNN = "could not create a primitive"


class CpuOom(nn.Module):
    """A tiny CNN whose forward pass fails like the CPU allocator (``error``) on batches larger than ``limit``."""

    def __init__(self, limit: int, error: BaseException) -> None:
        super().__init__()
        self.net, self.limit, self.error, self.sizes = TinyNet(), limit, error, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise self.error
        return self.net(x)


class Argmax(nn.Module):
    def __init__(self, keepdim: bool) -> None:
        super().__init__()
        self.net, self.keepdim = TinyNet(), keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).argmax(1, keepdim=self.keepdim)


@pytest.mark.parametrize("error", [RuntimeError(ONEDNN), RuntimeError("std::bad_alloc"), MemoryError(),
                                   RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                                                "can't allocate memory: you tried to allocate 1 bytes.")])
def test_cpu_allocator_failures_are_oom(error):
    assert is_oom(error)


@pytest.mark.parametrize("error", [RuntimeError("could not create a primitive descriptor for a convolution forward "
                                                "propagation primitive"), RuntimeError("shape mismatch"),
                                   ValueError(ONEDNN)])
def test_other_errors_are_not_oom(error):
    assert not is_oom(error)


def test_evaluate_answers_cpu_oom_with_the_largest_batch_that_fits():
    x, y = make_tiny_data(64)
    model = CpuOom(20, RuntimeError(ONEDNN)).eval()
    with pytest.raises(PgdatError, match=r"out of memory on cpu at batch_size=64 \(clean accuracy\); the largest "
                                         r"that fits is ~20 — rerun with batch_size=20"):
        evaluate(model, x, y, attacks="clean,pgd-2", eps=0.1, batch_size=64)
    res = evaluate(model, x, y, attacks="clean,pgd-2", eps=0.1, batch_size=64, on_oom="halve")
    assert res.batch_size == 16 and res.n == 64 and any("out of memory" in w for w in res.warnings)


@pytest.mark.parametrize("check", ["masking", "sanity"])
def test_masking_and_sanity_checks_answer_cpu_oom(check):
    x, y = make_tiny_data(64)
    model = CpuOom(16, RuntimeError(ONEDNN)).eval()

    def run(on_oom: str):  # noqa: ANN202
        if check == "masking":
            return masking_checks(model, x, y, eps=0.1, steps=2, queries=3, on_oom=on_oom, batch_option=CLI_EVAL_BATCH)
        return sanity_checks(model, x, y, eps=0.1, steps=2, on_oom=on_oom, batch_option=CLI_EVAL_BATCH)

    with pytest.raises(PgdatError, match=rf"out of memory on cpu at --batch-size=64 \({check} checks\); the largest "
                                         r"that fits is ~16 — rerun with --batch-size 16"):
        run("raise")
    model.sizes.clear()
    with pytest.warns(UserWarning, match=rf"--batch-size=32 \({check} checks\): running them on the first 16 points"):
        results = run("halve")
    assert len(results) >= 3 and max(model.sizes[model.sizes.index(16):]) == 16  # after halving: never above 16


def test_an_oom_before_a_batch_of_one_fits_says_the_model_is_too_large():
    x, y = make_tiny_data(8)
    with pytest.raises(PgdatError, match="even a batch of 1 does not fit"):
        masking_checks(CpuOom(0, MemoryError()).eval(), x, y, eps=0.1, steps=1, queries=1)


@pytest.mark.parametrize("keepdim", [False, True])
def test_model_returning_argmax_labels_is_a_clear_error_everywhere(keepdim):
    x, y = make_tiny_data(16)
    model = Argmax(keepdim).eval()
    for run in (lambda: evaluate(model, x, y, attacks="clean,pgd-2", eps=0.1),
                lambda: sanity_checks(model, x, y, eps=0.1, steps=2),
                lambda: masking_checks(model, x, y, eps=0.1, steps=2, queries=2)):
        with pytest.raises(PgdatError, match=r"returned a torch\.int64 tensor of shape .*predicted labels \(an argmax"):
            run()
