"""Resource limits: a batch that does not fit in memory fails early with the option and the batch size to use
(training, per-epoch evaluation), or is halved with a logged warning (``pgdat eval``, final evaluation); never an
allocator crash from deep inside, never a damaged checkpoint.

Out of memory is simulated by a model wrapper that raises the allocator's own error when a forward pass sees more
than ``limit`` examples (CUDA/MPS: torch.OutOfMemoryError; CPU: the DefaultCPUAllocator RuntimeError), and provoked
for real on the CPU allocator in a subprocess under an address-space limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import pgdat.cli.eval as cli_eval
from pgdat.checkpoint import load_checkpoint
from pgdat.cli.main import main
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.eval import evaluate
from pgdat.memory import Batcher, is_oom, largest_fitting
from pgdat.training import Trainer
from tests.conftest import Interrupted, interrupt_after_epoch

CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
           "allocate 2147483648 bytes. Error code 12 (Cannot allocate memory)")
ERRORS = {
    "cuda": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                                           "capacity of 79.19 GiB of which 1.06 GiB is free."),
    "cpu": lambda: RuntimeError(CPU_OOM),
}


class OOMAbove(nn.Module):
    """``model``, except that a forward pass on more than ``limit`` examples raises an out-of-memory error.

    kind: which allocator's error (``cuda`` or ``cpu``). grad_only: only passes with autograd on fail (attacks and
    training steps, not no-grad predictions). after: the first ``after`` oversized passes still succeed.
    """

    def __init__(self, model: nn.Module, limit: int, kind: str = "cuda", grad_only: bool = False,
                 after: int = 0) -> None:
        super().__init__()
        self.inner, self.limit, self.kind, self.grad_only, self.after = model, limit, kind, grad_only, after
        self.oversized = 0  # oversized forward passes seen
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit and (torch.is_grad_enabled() or not self.grad_only):
            self.oversized += 1
            if self.oversized > self.after:
                raise ERRORS[self.kind]()
        return self.inner(x)


SMALL = ["data.n_train=128", "eval.n_test=32", "eval.n_final=32", "eval.final_attacks=clean"]


def _trainer(tmp_path, tiny_overrides, extra, limit=None, resume=False, **kw) -> Trainer:  # noqa: ANN001
    cfg = load_config("default", tiny_overrides + SMALL + extra)
    trainer = Trainer(cfg, tmp_path / "run", resume=resume, callbacks=[])
    if limit is not None:
        trainer.train_model = trainer.attack_model = OOMAbove(trainer.model, limit, **kw)
    return trainer


def test_oom_is_recognised_on_every_device_and_nothing_else_is():
    assert all(is_oom(make()) for make in ERRORS.values())
    assert is_oom(RuntimeError("MPS backend out of memory (MPS allocated: 1.2 GB)"))
    assert is_oom(RuntimeError("not enough memory: you tried to allocate 123 bytes."))
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x5)"))
    assert not is_oom(ValueError("out of memory"))  # only allocator errors (RuntimeError family) count


@pytest.mark.parametrize("kind", ["cuda", "cpu"])
def test_training_step_that_does_not_fit_names_the_batch_size_that_does(tmp_path, tiny_overrides, kind):
    extra = ["train.epochs=1", "data.batch_size=64", "eval.batch_size=32"]
    trainer = _trainer(tmp_path, tiny_overrides, extra, limit=40, kind=kind)
    with pytest.raises(PgdatError) as info:
        trainer.fit()
    assert str(info.value) == ("out of memory on cpu at data.batch_size=64 (training step of method pgd_at); the "
                               "largest that fits is ~40 — rerun with --set data.batch_size=40")
    assert trainer.history == [] and not (tmp_path / "run" / "last.pt").exists()
    assert trainer.cfg.data.batch_size == 64  # the experiment was not changed behind the user's back
    if kind == "cpu":
        return  # the same message; the rerun below is the same for both allocators
    # the suggested size really trains, under the same memory limit
    again = _trainer(tmp_path, tiny_overrides, ["train.epochs=1", "data.batch_size=40", "eval.batch_size=32"],
                     limit=40, kind=kind)
    again.fit()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_oom_mid_training_leaves_last_checkpoint_intact_and_resumable(tmp_path, tiny_overrides):
    base = ["data.batch_size=64", "eval.batch_size=32"]
    first = _trainer(tmp_path, tiny_overrides, base + ["train.epochs=2"])
    first.callbacks.append(interrupt_after_epoch(1))
    with pytest.raises(Interrupted):
        first.fit()
    last = tmp_path / "run" / "last.pt"
    before = last.read_bytes()
    # epoch 2 of the resumed run fails at its second step (pgd-2 training: 3 forward passes per step)
    resumed = _trainer(tmp_path, tiny_overrides, base + ["train.epochs=2"], limit=40, resume=True, kind="cpu",
                       after=3)
    with pytest.raises(PgdatError, match=r"at data.batch_size=64 \(training step of method pgd_at\); the largest "
                                         r"that fits is ~40 — rerun with --set data.batch_size=40"):
        resumed.fit()
    assert resumed.attack_model.oversized > 3  # it failed mid-epoch, after a successful oversized step
    assert last.read_bytes() == before
    assert load_checkpoint(last)["epoch"] == 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")) == []
    _trainer(tmp_path, tiny_overrides, base + ["train.epochs=2"], resume=True).fit()
    assert load_checkpoint(last)["epoch"] == 2


def test_evaluation_batch_that_does_not_fit_fails_before_any_training(tmp_path, tiny_overrides):
    # training batches (16) fit; one attacked evaluation batch of 64 does not, though the clean pass does
    trainer = _trainer(tmp_path, tiny_overrides, ["train.epochs=1", "data.batch_size=16", "eval.batch_size=64"],
                       limit=20, grad_only=True)
    with pytest.raises(PgdatError) as info:
        trainer.fit()
    assert str(info.value) == ("out of memory on cpu at eval.batch_size=64 (attack pgd-3); the largest that fits is "
                               "~20 — rerun with --set eval.batch_size=20")
    assert trainer.history == [] and trainer.epoch == 0 and not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("kind", ["cuda", "cpu"])
def test_evaluate_raises_with_the_largest_batch_that_fits(tiny_model, tiny_batch, kind):
    x, y = tiny_batch
    with pytest.raises(PgdatError) as info:
        evaluate(OOMAbove(tiny_model, 20, kind), x, y, attacks="clean,pgd-3", eps=0.1, batch_size=64)
    assert str(info.value) == ("out of memory on cpu at batch_size=64 (clean accuracy); the largest that fits is ~20 "
                               "— rerun with batch_size=20")
    fitted = evaluate(OOMAbove(tiny_model, 20, kind), x, y, attacks="clean,pgd-3", eps=0.1, batch_size=20)
    assert fitted.accuracy == evaluate(tiny_model, x, y, attacks="clean,pgd-3", eps=0.1, batch_size=20).accuracy


def test_evaluate_attack_oom_suggests_a_size_that_works(tiny_model, tiny_batch):
    x, y = tiny_batch
    model = OOMAbove(tiny_model, 20, grad_only=True)  # clean pass fits at 64, the attack does not
    with pytest.raises(PgdatError, match=r"at batch_size=64 \(attack pgd-3\); the largest that fits is ~") as info:
        evaluate(model, x, y, attacks="clean,pgd-3", eps=0.1, batch_size=64)
    size = int(str(info.value).rsplit("batch_size=", 1)[1])
    assert 10 <= size <= 20
    evaluate(model, x, y, attacks="clean,pgd-3", eps=0.1, batch_size=size)


def test_evaluate_halving_logs_and_gives_the_small_batch_result(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.warns(UserWarning, match="continuing with batch size 16"):
        res = evaluate(OOMAbove(tiny_model, 20), x, y, attacks="clean,pgd-3", eps=0.1, batch_size=64, on_oom="halve")
    assert res.batch_size == 16
    assert res.warnings == [
        "out of memory on cpu at batch_size=64 (clean accuracy): continuing with batch size 32; batch_size=32 avoids "
        "the retry",
        "out of memory on cpu at batch_size=32 (clean accuracy): continuing with batch size 16; batch_size=16 avoids "
        "the retry"]
    small = evaluate(tiny_model, x, y, attacks="clean,pgd-3", eps=0.1, batch_size=16)
    assert all(torch.equal(res.flags[k], small.flags[k]) for k in small.flags)


def test_evaluate_halving_down_to_nothing_is_an_error(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.warns(UserWarning), pytest.raises(PgdatError, match=r"at batch_size=8 \(clean accuracy\), and even "
                                                                     "a batch of 1 does not fit"):
        evaluate(OOMAbove(tiny_model, 0), x, y, attacks="clean", eps=0.1, batch_size=8, on_oom="halve")


def test_cli_eval_halves_and_reports_it(tmp_path, monkeypatch):
    load = cli_eval._model_and_data

    def wrapped(args):  # noqa: ANN001, ANN202
        model, x, y, cfg = load(args)
        return OOMAbove(model, 20, "cpu"), x, y, cfg

    monkeypatch.setattr(cli_eval, "_model_and_data", wrapped)
    out = tmp_path / "eval.json"
    with pytest.warns(UserWarning, match="continuing with batch size 16"):
        code = main(["eval", "--n", "64", "--batch-size", "64", "--attacks", "clean,pgd-2", "--eps", "0.1",
                     "--json", str(out)])
    assert code == 0
    res = json.loads(out.read_text())
    assert res["batch_size"] == 16 and res["n"] == 64
    assert res["warnings"][0] == ("out of memory on cpu at --batch-size=64 (clean accuracy): continuing with batch "
                                  "size 32; --batch-size 32 avoids the retry")


REAL_OOM = textwrap.dedent("""
    import resource, torch
    from torch import nn
    from pgdat.errors import PgdatError
    from pgdat.eval import evaluate
    torch.set_num_threads(1)

    class Upsample(nn.Module):
        # (B, 1, 8, 8) -> (B, 1, 512, 512) float32: 1 MiB of activations per image -> (B, 4) logits
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 4)

        def forward(self, x):
            return self.fc(nn.functional.interpolate(x, scale_factor=64).mean(dim=(2, 3)))

    model = Upsample().eval()
    x, y = torch.rand(1024, 1, 8, 8), torch.arange(1024) % 4
    evaluate(model, x[:4], y[:4], attacks="clean", eps=0.1, batch_size=4)
    vm = int(next(s for s in open("/proc/self/status") if s.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 600 * 2**20, resource.RLIM_INFINITY))
    try:
        evaluate(model, x, y, attacks="clean", eps=0.1, batch_size=1024)
    except PgdatError as e:
        print(e)
        size = int(str(e).rsplit("=", 1)[1])
        print(evaluate(model, x, y, attacks="clean", eps=0.1, batch_size=size).n)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS and /proc (Linux)")
def test_real_cpu_allocator_failure_under_an_address_space_limit():
    """Not simulated: 1024 images need 1 GiB of activations but the process may only map 600 MiB more."""
    proc = subprocess.run([sys.executable, "-c", REAL_OOM], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    error, n = proc.stdout.strip().splitlines()
    assert error.startswith("out of memory on cpu at batch_size=1024 (clean accuracy); the largest that fits is ~")
    size = int(error.rsplit("=", 1)[1])
    assert 256 <= size < 600 and n == "1024"  # found within a factor 2 of the limit, and it really runs


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(data=st.data(), failed=st.integers(1, 5000), refine=st.integers(0, 4))
def test_largest_fitting_is_bounded_and_never_above_the_limit(data, failed, refine):
    limit = data.draw(st.integers(0, failed - 1), label="limit")  # sizes above it run out of memory
    calls = []

    def probe(b: int) -> None:
        calls.append(b)
        if b > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB.")

    with mock.patch("pgdat.memory.free_memory") as freed:
        largest, probes = largest_fitting(probe, failed, "cpu", refine=refine)
    assert probes == len(calls) <= failed.bit_length() - 1 + refine  # log2(failed) halvings + refine bisections
    assert freed.call_count == sum(b > limit for b in calls)  # memory freed after every failed probe
    assert all(1 <= b < failed for b in calls)
    assert largest <= limit and (largest == 0) == (limit == 0)
    assert 2 * largest + 1 >= limit  # within a factor of two
    if refine >= failed.bit_length():
        assert largest == limit


@FAST
@given(n=st.integers(0, 300), size=st.integers(1, 128), limit=st.integers(1, 128))
def test_halving_batcher_processes_every_item_exactly_once(n, size, limit):
    seen = torch.zeros(n, dtype=torch.long)

    def step(i: int, j: int) -> None:
        if j - i > limit:
            raise RuntimeError(CPU_OOM)
        seen[i:j] += 1

    batcher = Batcher(size, "cpu", on_oom="halve")
    with warnings.catch_warnings(), mock.patch("pgdat.memory.free_memory"):
        warnings.simplefilter("ignore")
        batcher.run(n, step, "a test loop")
    assert bool((seen == 1).all())
    assert batcher.size <= size and (batcher.size == size) == (not batcher.notes)
    if batcher.notes:
        assert batcher.size <= limit < 2 * batcher.size + 1
