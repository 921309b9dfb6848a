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
    from pgdat.training.callback_list import build_callbacks
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
    import copy

    x, y = tiny_batch
    models = [copy.deepcopy(tiny_model) for _ in range(2)]  # train-mode alignment passes move the BN running stats

    def big(m: torch.nn.Module) -> StepContext:
        return StepContext(attack=AttackConfig(eps=0.3, step_size=0.1, steps=1), attack_model=m,
                           generator=torch.Generator().manual_seed(0))

    with pytest.warns(UserWarning, match="method.params.lam"):
        default = build_method("grad_align", {})(models[0], x, y, big(models[0]))
    capped = build_method("grad_align", {"lam": 2.0})(models[1], x, y, big(models[1]))
    assert torch.allclose(default["loss"], capped["loss"])


def _ref_cos(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cosine between the input gradients of the mean CE at a and at b (the references' GradAlign, written
    from their documented behaviour: train-mode model, examples with a zero gradient left out)."""
    grads = []
    for z in (a, b):
        z = z.detach().clone().requires_grad_(True)
        grads.append(torch.autograd.grad(F.cross_entropy(model(z), y), z)[0].flatten(1))
    ok = (grads[0].norm(dim=1) > 0) & (grads[1].norm(dim=1) > 0)
    return float(F.cosine_similarity(grads[0][ok], grads[1][ok], dim=1).mean())


@pytest.mark.parametrize("first_point", ["clean", "adv"])
def test_grad_align_matches_the_references(tiny_model, tiny_batch, first_point):
    """Both references (tml-epfl/understanding-fast-adv-training train.py: first gradient at x; gortizji/co_features
    train/utils.py GradAlign: at the FGSM point) take the second gradient at x + eta, eta ~ U[-eps, eps], around the
    *clean* point, with the model in train mode (BatchNorm on batch statistics)."""
    import copy

    x, y = tiny_batch
    ref_model = copy.deepcopy(tiny_model).train()
    x_adv = single_step(_ctx(tiny_model), x, y, alpha=1.0, init="zero")
    eta = (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - 1) * EPS  # pgdat's draw of eta
    cos = _ref_cos(ref_model, x if first_point == "clean" else x_adv, x + eta, y)
    with torch.no_grad():
        fgsm_loss = F.cross_entropy(tiny_model(x_adv), y)  # before the train-mode passes move the BN running stats
    ctx = _ctx(tiny_model)  # the FGSM step from zero draws no random numbers, so eta is the generator's first draw
    out = build_method("grad_align", {"lam": 0.5, "first_point": first_point})(tiny_model, x, y, ctx)
    assert float(out["grad_align_cos"]) == pytest.approx(cos, abs=1e-5)
    assert float(out["loss"]) == pytest.approx(float(fgsm_loss) + 0.5 * (1 - cos), rel=1e-5)
    assert not tiny_model.training  # the model's mode is restored


def test_grad_align_bn_mode_option_follows_the_attack_when_null(tiny_model, tiny_batch):
    x, y = tiny_batch
    eta = (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - 1) * EPS
    out = build_method("grad_align", {"lam": 0.5, "bn_mode": None})(tiny_model, x, y, _ctx(tiny_model))
    assert float(out["grad_align_cos"]) == pytest.approx(_ref_cos(tiny_model.eval(), x, x + eta, y), abs=1e-5)
