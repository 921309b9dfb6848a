"""Property tests: any attack argument or config value gives either a PgdatError or a correct result, never
another exception from deep inside."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from pgdat.attacks import fgsm, parse_attack, pgd
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.threat import ThreatModel
from pgdat.training.validate import validate_config

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
torch.manual_seed(0)
MODEL = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
X = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 2, 0, 1, 2])

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(-1, 3),
                    st.sampled_from([0.0, 1e-8, 8 / 255, 0.3, 1.0]))
norms = st.sampled_from(["linf", "l2", "l1", "Linf", ""])


def _assert_valid_adversarial(x_adv: torch.Tensor, eps: float, norm: str) -> None:
    assert x_adv.shape == X.shape and x_adv.dtype == X.dtype
    assert bool(torch.isfinite(x_adv).all())
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    size = ThreatModel(norm, eps).norm_of(x_adv - X)
    assert float(size.max()) <= eps * (1 + 1e-4) + 1e-6
    if eps == 0:
        assert torch.equal(x_adv, X)


@FAST
@given(eps=numbers, step_size=numbers, steps=st.integers(-2, 4), restarts=st.integers(-1, 2), norm=norms,
       loss=st.sampled_from(["ce", "cw", "hinge"]), bn_mode=st.sampled_from(["eval", "train", "frozen"]),
       init=st.sampled_from(["uniform", "normal", "zero", "gauss"]), stop=st.booleans())
def test_pgd_arguments_error_or_valid_result(eps, step_size, steps, restarts, norm, loss, bn_mode, init, stop):
    try:
        x_adv = pgd(MODEL, X, Y, eps=eps, step_size=step_size, steps=steps, norm=norm, restarts=restarts, loss=loss,
                    bn_mode=bn_mode, init=init, stop_on_success=stop,
                    generator=torch.Generator().manual_seed(0))
    except PgdatError:
        return
    assert math.isfinite(eps) and eps >= 0 and steps >= 1 and restarts >= 1 and norm in ("linf", "l2")
    assert loss in ("ce", "cw") and bn_mode in ("eval", "train")
    _assert_valid_adversarial(x_adv, eps, norm)
    assert not MODEL.training


@FAST
@given(eps=st.floats(0, 1), step_size=st.floats(0, 1), steps=st.integers(1, 4), restarts=st.integers(1, 2),
       norm=st.sampled_from(["linf", "l2"]), loss=st.sampled_from(["ce", "cw"]),
       bn_mode=st.sampled_from(["eval", "train"]), init=st.sampled_from(["uniform", "normal", "zero"]),
       stop=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_pgd_valid_arguments_always_give_valid_result(eps, step_size, steps, restarts, norm, loss, bn_mode, init,
                                                      stop, seed):
    x_adv = pgd(MODEL, X, Y, eps=eps, step_size=step_size, steps=steps, norm=norm, restarts=restarts, loss=loss,
                bn_mode=bn_mode, init=init, stop_on_success=stop, generator=torch.Generator().manual_seed(seed))
    _assert_valid_adversarial(x_adv, eps, norm)
    assert not MODEL.training


@FAST
@given(eps=numbers, step_size=st.one_of(st.none(), numbers), norm=norms,
       init=st.sampled_from(["zero", "uniform", "normal", "gauss"]), project=st.booleans())
def test_fgsm_arguments_error_or_valid_result(eps, step_size, norm, init, project):
    try:
        x_adv = fgsm(MODEL, X, Y, eps=eps, step_size=step_size, init=init, project=project, norm=norm,
                     generator=torch.Generator().manual_seed(0))
    except PgdatError:
        return
    assert math.isfinite(eps) and eps >= 0 and norm in ("linf", "l2")
    assert x_adv.shape == X.shape and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    if project:
        _assert_valid_adversarial(x_adv, eps, norm)


@FAST
@given(spec=st.one_of(st.text(max_size=12), st.from_regex(r"(pgd|cw|fgsm|clean|apgd-ce|bogus)(-\d{1,3}(x\d{1,2})?)?",
                                                            fullmatch=True)))
def test_parse_attack_error_or_well_formed_spec(spec):
    try:
        attack = parse_attack(spec)
    except PgdatError:
        return
    assert attack.steps >= 0 and attack.restarts >= 1 and callable(attack.run)


config_values = st.one_of(st.integers(-3, 300).map(str), st.floats(allow_nan=True, width=32).map(repr),
                          st.sampled_from(["8/255", "0", "-1", "abc", "[1, 2]", "{a: 1}", "true", "null", "pgd-0",
                                           "pgd_at", "trades", "foo", "cosine", "cuda:0", "gpu", "bf16"]))
config_keys = st.sampled_from(["attack.eps", "attack.step_size", "attack.steps", "attack.restarts", "attack.norm",
                               "attack.init", "method.name", "model.name", "data.name", "data.batch_size",
                               "data.n_train", "optim.lr", "optim.schedule", "optim.ema", "optim.betas",
                               "train.epochs", "train.device", "train.precision", "eval.attack", "eval.step_size",
                               "attack.bogus"])


@FAST
@given(items=st.lists(st.tuples(config_keys, config_values), min_size=1, max_size=3))
def test_config_values_error_or_valid_config(items):
    try:
        cfg = load_config("default", [f"{k}={v}" for k, v in items])
        validate_config(cfg)
    except PgdatError as e:
        assert "\n" not in str(e)
        return
    a = cfg.attack
    assert math.isfinite(a.eps) and 0 < a.eps <= 1 and a.steps >= 1 and a.restarts >= 1 and a.step_size > 0
    assert cfg.data.batch_size >= 1 and cfg.optim.lr > 0 and cfg.train.epochs >= 1
    assert cfg.eval.step_size is None or cfg.eval.step_size > 0
