"""Single-step methods (FGSM-AT, RS-FGSM, N-FGSM) and GradAlign: perturbation bounds, the lambda rule, the
alignment penalty and the default CO monitor."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pgdat.attacks import fgsm
from pgdat.config import AttackConfig
from pgdat.errors import PgdatError
from pgdat.methods import METHODS, StepContext, build_method
from pgdat.methods.grad_align import alignment_penalty, grad_align_lambda
from pgdat.methods.single_step import single_step

EPS = 0.1
ATTACK = AttackConfig(eps=EPS, step_size=0.01, steps=7, init="uniform", bn_mode="eval")


def _ctx(model, seed=0):
    return StepContext(attack=ATTACK, attack_model=model, generator=torch.Generator().manual_seed(seed))


def _linf(a, b):
    return (a - b).flatten(1).abs().max(1).values


def test_fgsm_at_is_zero_init_fgsm_with_step_eps(tiny_model, tiny_batch):
    x, y = tiny_batch
    x_adv = single_step(_ctx(tiny_model), x, y, alpha=1.0, init="zero")
    ref = fgsm(tiny_model, x, y, eps=EPS)
    assert torch.allclose(x_adv, ref)
    assert _linf(x_adv, x).max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (_linf(x_adv, x) > 0.99 * EPS).float().mean() > 0.5  # most examples move a full step


def test_rs_fgsm_stays_in_ball_and_n_fgsm_leaves_it(tiny_model, tiny_batch):
    x, y = tiny_batch
    rs = single_step(_ctx(tiny_model), x, y, alpha=1.25, init="uniform")
    nf = single_step(_ctx(tiny_model), x, y, alpha=1.0, init="uniform", init_scale=2.0, project=False)
    assert _linf(rs, x).max() <= EPS + 1e-6
    assert _linf(nf, x).max() <= 3 * EPS + 1e-6 and _linf(nf, x).max() > EPS + 1e-3
    assert nf.min() >= 0 and nf.max() <= 1


@pytest.mark.parametrize("name", ["fgsm_at", "rs_fgsm", "n_fgsm", "grad_align"])
def test_single_step_methods_register_the_co_monitor_by_default(name):
    from pgdat.training.callbacks import build_callbacks
    from pgdat.training.co_monitor import COMonitor

    specs = [dict(s) for s in METHODS.get(name).default_callbacks]
    assert specs == [{"name": "co_monitor"}]
    (cb,) = build_callbacks(specs)  # the registry is filled on demand, so this holds when the file runs alone
    assert isinstance(cb, COMonitor)


def test_grad_align_lambda_rule():
    assert grad_align_lambda(8 / 255) == pytest.approx(0.2)
    assert grad_align_lambda(16 / 255) == pytest.approx(2.0)
    assert grad_align_lambda(0.0) == pytest.approx(0.02)


def test_alignment_penalty_range_and_double_backprop(tiny_model, tiny_batch):
    x, y = tiny_batch
    reg, cos = alignment_penalty(tiny_model, x, y, EPS, torch.Generator().manual_seed(0))
    r = float(reg.detach())
    assert 0.0 <= r <= 2.0 and r == pytest.approx(1 - float(cos), abs=1e-6)
    tiny_model.zero_grad()
    reg.backward()  # the second gradient is built with create_graph: the penalty reaches the weights
    assert sum(float(p.grad.abs().sum()) for p in tiny_model.parameters() if p.grad is not None) > 0


def test_grad_align_with_zero_lambda_is_fgsm_at(tiny_model, tiny_batch):
    x, y = tiny_batch
    plain = build_method("fgsm_at", {})(tiny_model, x, y, _ctx(tiny_model))["loss"]
    zero = build_method("grad_align", {"lam": 0.0})(tiny_model, x, y, _ctx(tiny_model))
    assert torch.allclose(plain, zero["loss"]) and "grad_align_cos" not in zero
    full = build_method("grad_align", {"lam": 0.5, "first_point": "adv"})(tiny_model, x, y, _ctx(tiny_model))
    assert float(full["loss"]) >= float(plain) - 1e-6
    assert float(full["loss"]) == pytest.approx(float(plain) + 0.5 * (1 - float(full["grad_align_cos"])), rel=1e-5)


def test_single_step_option_errors(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.raises(PgdatError, match="first_point"):
        build_method("grad_align", {"first_point": "middle"})(tiny_model, x, y, _ctx(tiny_model))
    with pytest.raises(PgdatError, match="k must be"):
        build_method("n_fgsm", {"k": -1.0})(tiny_model, x, y, _ctx(tiny_model))
    with pytest.raises(PgdatError, match="alpha"):
        build_method("fgsm_at", {"alpha": 0.0})(tiny_model, x, y, _ctx(tiny_model))


def test_fgsm_at_loss_is_ce_on_the_fgsm_point(tiny_model, tiny_batch):
    x, y = tiny_batch
    out = build_method("fgsm_at", {})(tiny_model, x, y, _ctx(tiny_model))
    ref = F.cross_entropy(tiny_model(fgsm(tiny_model, x, y, eps=EPS)), y)
    assert math.isclose(float(out["loss"]), float(ref), rel_tol=1e-5)


def test_grad_align_lambda_rule_is_capped_outside_its_range(tiny_model, tiny_batch):
    x, y = tiny_batch
    big = StepContext(attack=AttackConfig(eps=0.3, step_size=0.1, steps=1), attack_model=tiny_model,
                      generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="method.params.lam"):
        default = build_method("grad_align", {})(tiny_model, x, y, big)
    big.generator.manual_seed(0)
    capped = build_method("grad_align", {"lam": 2.0})(tiny_model, x, y, big)
    assert torch.allclose(default["loss"], capped["loss"])
