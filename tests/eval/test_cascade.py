"""The evaluation cascade: equal to the reference AutoAttack run, fp32 re-check of low-precision successes,
progress lines, resume after a kill."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.eval import evaluate
from pgdat.eval.progress import AttackDoneProgress, BatchEvent, PrintProgress


def _ten_class_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small random MLP with 10 classes on (16, 1, 8, 8) inputs, labelled by its own clean predictions."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    return model, x, y


def test_apgd_ce_apgd_t_cascade_equals_reference_run():
    """pgdat's cascade of the reference components gives, point by point, the reference package's own
    run_standard_evaluation (standard settings, same seed, same batches) with APGD-CE then APGD-T."""
    from pyautoattack import AutoAttack

    model, x, y = _ten_class_model()
    res = evaluate(model, x, y, attacks="clean,apgd-ce,apgd-t", eps=0.05, batch_size=8, seed=0, checks=False)
    ref = AutoAttack(model, device="cpu", eps=0.05, norm="Linf", seed=0, version="standard")
    ref.verbose, ref.attacks_to_run = False, ["apgd-ce", "apgd-t"]
    x_adv, _ = ref.run_standard_evaluation(x, y, batch_size=8)
    with torch.no_grad():
        ref_robust = model(x_adv).argmax(dim=1).eq(y)
    assert 0 < int(ref_robust.sum()) < len(y)  # the case is not trivial
    assert torch.equal(res.robust, ref_robust)
    assert res.accuracy["apgd-t"] <= res.accuracy["apgd-ce"] <= res.accuracy["clean"]


def test_autoattack_expands_to_standard_components(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.raises(PgdatError, match="autoattack already runs"):
        evaluate(tiny_model, x, y, attacks="clean,apgd-ce,autoattack", eps=0.1)


class _NearTie(nn.Module):
    """Logits (B, 2) = (1.0, 1.002) + a 1e-5-scale input term, through one Linear: class 1 wins in fp32 by 0.002,
    but bf16 (spacing 2^-7 near 1.0) rounds both logits to 1.0, and argmax of a tie picks class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 2)
        with torch.no_grad():
            self.fc.weight.fill_(1e-5)
            self.fc.bias.copy_(torch.tensor([1.0, 1.002]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("attack", ["pgd-3", "apgd-ce"])
def test_fp32_recheck_removes_success_that_exists_only_in_bf16(attack):
    model = _NearTie().eval()
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.ones(12, dtype=torch.long)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x).argmax(dim=1).ne(y).all()  # every point is "broken" in bf16, by rounding alone
    with torch.no_grad():
        assert model(x).argmax(dim=1).eq(y).all()  # and none in fp32
    res = evaluate(model, x, y, attacks=f"clean,{attack}", eps=0.1, precision="bf16", checks=False)
    assert res.accuracy == {"clean": 1.0, attack: 1.0}


def test_progress_prints_one_plain_line_per_batch(tiny_model, tiny_batch):
    x, y = tiny_batch
    out, events = io.StringIO(), []
    printer = PrintProgress(out)

    def both(e: BatchEvent) -> None:
        events.append(e)
        printer(e)

    res = evaluate(tiny_model, x, y, attacks="clean,pgd-2,fgsm", eps=0.3, batch_size=16, progress=both)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == len(events) > 0
    robust_at_pgd = int(res.flags["clean"].sum())
    assert sum(e.attack == "pgd-2" for e in events) == -(-robust_at_pgd // 16)
    last_pgd = [e for e in events if e.attack == "pgd-2"][-1]
    assert last_pgd.left == 0 and last_pgd.batch == last_pgd.batches and last_pgd.eta == 0
    assert last_pgd.robust == int(res.flags["pgd-2"].sum())
    assert all(k in lines[0] for k in ("points left", "robust", "s/batch", "ETA"))


def test_quiet_progress_prints_one_line_per_attack(tiny_model, tiny_batch):
    x, y = tiny_batch
    out = io.StringIO()
    res = evaluate(tiny_model, x, y, attacks="clean,pgd-2,fgsm", eps=0.3, batch_size=16,
                   progress=AttackDoneProgress(out, prefix="[final last] "))
    lines = out.getvalue().splitlines()
    attacked = [a for a in ("pgd-2", "fgsm") if res.flags["clean" if a == "pgd-2" else "pgd-2"].any()]
    assert [line.split()[3] for line in lines] == attacked  # "[final last] [eval] ATTACK done: ..."
    assert f"({int(res.flags[attacked[-1]].sum())}/{len(y)})" in lines[-1]


class _Killed(Exception):
    pass


def test_killed_evaluation_resumes_to_the_uninterrupted_result(tiny_model, tiny_batch, tmp_path):
    x, y = tiny_batch
    opts = {"attacks": "clean,pgd-3,fgsm,cw-2", "eps": 0.25, "batch_size": 8, "seed": 5, "checks": False}
    whole = evaluate(tiny_model, x, y, **opts)
    state = tmp_path / "out.json.state"
    seen: list[BatchEvent] = []

    def kill_at_third_pgd_batch(e: BatchEvent) -> None:
        seen.append(e)
        if e.attack == "pgd-3" and e.batch == 3:
            raise _Killed

    with pytest.raises(_Killed):
        evaluate(tiny_model, x, y, progress=kill_at_third_pgd_batch, state_path=state, **opts)
    assert state.exists() and len(seen) == 3
    resumed_events: list[BatchEvent] = []
    resumed = evaluate(tiny_model, x, y, progress=resumed_events.append, state_path=state, **opts)
    assert resumed_events[0].attack == "pgd-3" and resumed_events[0].batch == 4  # went on, did not redo
    assert resumed.accuracy == whole.accuracy
    assert all(torch.equal(resumed.flags[k], whole.flags[k]) for k in whole.flags)
    assert not state.exists()  # removed once the evaluation is complete


def test_state_of_another_evaluation_is_refused_and_kept(tiny_model, tiny_batch, tmp_path):
    x, y = tiny_batch
    state = tmp_path / "out.json.state"

    def stop(e: BatchEvent) -> None:
        raise _Killed

    with pytest.raises(_Killed):
        evaluate(tiny_model, x, y, attacks="clean,pgd-3", eps=0.25, batch_size=8, progress=stop, state_path=state)
    before = state.read_bytes()
    with pytest.raises(PgdatError, match=r"belongs to another evaluation \(differs in: eps\)"):
        evaluate(tiny_model, x, y, attacks="clean,pgd-3", eps=0.2, batch_size=8, state_path=state)
    assert state.read_bytes() == before


@pytest.mark.parametrize("name", ["square", pytest.param("apgd-ce", marks=pytest.mark.slow),
                                  pytest.param("apgd-t", marks=pytest.mark.slow),
                                  pytest.param("fab-t", marks=pytest.mark.slow)])
def test_reference_components_run_under_bf16_autocast(name):
    """bf16 attack iterations on the reference's code: the logits reach its losses as fp32 (its Square attack wrote
    bf16 losses into fp32 buffers and failed on the default CNN when autocast wrapped the whole attack), every
    adversarial example stays in the eps-ball and the box."""
    from pgdat.attacks.autoattack import autoattack_component

    model, x, y = _ten_class_model()
    x_adv = autoattack_component(model, x[:4], y[:4], name=name, eps=0.05, precision="bf16")
    assert x_adv.dtype == x.dtype and (x_adv - x[:4]).abs().max() <= 0.05 + 1e-6
    assert 0 <= x_adv.min() and x_adv.max() <= 1


def test_low_precision_covers_the_model_only(monkeypatch):
    """precision=bf16 runs the network under autocast, and nothing else: FAB's projection (the reference's own
    arithmetic, matmuls included) sees autocast off and fp32 operands. With autocast around the whole attack (the
    earlier design) the projection ran in bf16, a less exact attack that was also 1.4x slower on CPU."""
    import pyautoattack.fab_base as fab_base

    from pgdat.attacks.autoattack import autoattack_component

    model, x, y = _ten_class_model()
    seen: dict[str, list] = {"model": [], "projection": []}

    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            seen["model"].append(torch.is_autocast_enabled("cpu"))
            return self.net(inp)

    real = fab_base.projection_linf

    def projection(points, w, b):
        seen["projection"].append((torch.is_autocast_enabled("cpu"), points.dtype, w.dtype))
        return real(points, w, b)

    monkeypatch.setattr(fab_base, "projection_linf", projection)
    autoattack_component(Spy().eval(), x[:4], y[:4], name="fab-t", eps=0.05, precision="bf16")
    assert seen["model"] and all(seen["model"])
    assert seen["projection"] and set(seen["projection"]) == {(False, torch.float32, torch.float32)}


def test_reference_fab_leaves_no_parameter_gradients():
    """The reference's FAB calls backward(): pgdat runs it with the parameters frozen, so no weight gradient is
    computed or left in the caller's .grad, and every parameter's requires_grad is as it was."""
    from pgdat.attacks.autoattack import autoattack_component

    model, x, y = _ten_class_model()
    model[1].bias.requires_grad_(False)  # a parameter the caller froze stays frozen
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    autoattack_component(model, x[:4], y[:4], name="fab-t", eps=0.05)
    assert all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before


def test_standard_autoattack_cascade_equals_reference_run():
    """All four standard components (FAB-T and Square included, run with the parameters frozen): pgdat's cascade
    gives the reference's plain run_standard_evaluation point by point, on a case where APGD leaves points robust
    for FAB-T and Square to try."""
    from pyautoattack import AutoAttack

    model, x, y = _ten_class_model()
    res = evaluate(model, x, y, attacks="clean,autoattack", eps=0.03, batch_size=8, seed=0, checks=False)
    ref = AutoAttack(model, device="cpu", eps=0.03, norm="Linf", seed=0, version="standard")
    ref.verbose = False
    x_adv, _ = ref.run_standard_evaluation(x, y, batch_size=8)
    with torch.no_grad():
        ref_robust = model(x_adv).argmax(dim=1).eq(y)
    assert 0 < int(ref_robust.sum()) < len(y)
    assert torch.equal(res.robust, ref_robust)
    assert list(res.accuracy) == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
