"""Invariants every attack must keep, for every attack setting and norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pgdat.attacks import fgsm, pgd
from pgdat.errors import PgdatError
from pgdat.threat import ThreatModel

EPS = {"linf": 0.1, "l2": 0.5}

# name -> (callable(model, x, y, eps, norm, generator, bn_mode), radius multiplier of the bound)
ATTACK_SETTINGS = {
    "fgsm": (lambda m, x, y, e, n, g, b: fgsm(m, x, y, eps=e, norm=n, generator=g, bn_mode=b), 1.0),
    "rs_fgsm": (lambda m, x, y, e, n, g, b: fgsm(m, x, y, eps=e, norm=n, init="uniform", step_size=1.25 * e,
                                                   generator=g, bn_mode=b), 1.0),
    "n_fgsm": (lambda m, x, y, e, n, g, b: fgsm(m, x, y, eps=e, norm=n, init="uniform", init_scale=2.0,
                                                  project=False, generator=g, bn_mode=b), 3.0),
    "pgd_ce": (lambda m, x, y, e, n, g, b: pgd(m, x, y, eps=e, step_size=e / 4, steps=10, norm=n, generator=g,
                                                 bn_mode=b), 1.0),
    "pgd_cw": (lambda m, x, y, e, n, g, b: pgd(m, x, y, eps=e, step_size=e / 4, steps=10, norm=n, loss="cw",
                                                 generator=g, bn_mode=b), 1.0),
    "pgd_restarts": (lambda m, x, y, e, n, g, b: pgd(m, x, y, eps=e, step_size=e / 4, steps=5, norm=n, restarts=3,
                                                       generator=g, bn_mode=b), 1.0),
    "pgd_normal_init": (lambda m, x, y, e, n, g, b: pgd(m, x, y, eps=e, step_size=e / 4, steps=5, norm=n,
                                                          init="normal", generator=g, bn_mode=b), 1.0),
}
CASES = [(a, n) for a in ATTACK_SETTINGS for n in EPS]


def _run(name, model, x, y, norm, seed=0, bn_mode="eval"):
    fn, _ = ATTACK_SETTINGS[name]
    return fn(model, x, y, EPS[norm], norm, torch.Generator().manual_seed(seed), bn_mode)


@pytest.mark.parametrize("name,norm", CASES)
def test_inside_ball_and_box(tiny_model, tiny_batch, name, norm):
    x, y = tiny_batch
    x_adv = _run(name, tiny_model, x, y, norm)
    radius = ATTACK_SETTINGS[name][1] * EPS[norm]
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert (ThreatModel(norm, radius).norm_of(x_adv - x) <= radius + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name,norm", CASES)
def test_loss_rises(tiny_model, tiny_batch, name, norm):
    x, y = tiny_batch
    x_adv = _run(name, tiny_model, x, y, norm)
    with torch.no_grad():
        clean, adv = F.cross_entropy(tiny_model(x), y), F.cross_entropy(tiny_model(x_adv), y)
    assert adv > clean * 1.5


@pytest.mark.parametrize("name,norm", CASES)
@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("start_training", [False, True])
def test_model_mode_and_parameters_unchanged(tiny_model, tiny_batch, name, norm, bn_mode, start_training):
    x, y = tiny_batch
    tiny_model.train(start_training)
    tiny_model.bn.train(not start_training)  # a mixed-mode model must come back exactly as it was
    modes = {n: m.training for n, m in tiny_model.named_modules()}
    params = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    _run(name, tiny_model, x, y, norm, bn_mode=bn_mode)
    assert modes == {n: m.training for n, m in tiny_model.named_modules()}
    for n, p in tiny_model.named_parameters():
        assert torch.equal(p, params[n]), n
        assert p.grad is None, f"attack filled {n}.grad"


@pytest.mark.parametrize("name,norm", CASES)
def test_seeded_repeat_identical(tiny_model, tiny_batch, name, norm):
    x, y = tiny_batch
    a = _run(name, tiny_model, x, y, norm, seed=3)
    b = _run(name, tiny_model, x, y, norm, seed=3)
    assert torch.equal(a, b)
    if name not in ("fgsm",):  # random starts: another seed gives another result
        c = _run(name, tiny_model, x, y, norm, seed=4)
        assert not torch.equal(a, c)


def test_bn_mode_train_updates_running_stats_eval_does_not(tiny_model, tiny_batch):
    x, y = tiny_batch
    before = tiny_model.bn.running_mean.clone()
    pgd(tiny_model, x, y, eps=0.1, step_size=0.025, steps=3)
    assert torch.equal(tiny_model.bn.running_mean, before)
    pgd(tiny_model, x, y, eps=0.1, step_size=0.025, steps=3, bn_mode="train")
    assert not torch.equal(tiny_model.bn.running_mean, before)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_restarts_never_weaker_than_one_start(tiny_model, tiny_batch, norm):
    x, y = tiny_batch
    eps = EPS[norm] / 2
    one = pgd(tiny_model, x, y, eps=eps, step_size=eps / 4, steps=5, norm=norm,
              generator=torch.Generator().manual_seed(0))
    many = pgd(tiny_model, x, y, eps=eps, step_size=eps / 4, steps=5, norm=norm, restarts=5,
               generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fooled_one = tiny_model(one).argmax(1).ne(y)
        fooled_many = tiny_model(many).argmax(1).ne(y)
    assert (fooled_many | ~fooled_one).all(), "an example fooled by one start survived the restarts"
    assert fooled_many.sum() >= fooled_one.sum()
    loss_one = F.cross_entropy(tiny_model(one), y, reduction="none")
    loss_many = F.cross_entropy(tiny_model(many), y, reduction="none")
    assert (loss_many[~fooled_many] >= loss_one[~fooled_many] - 1e-5).all()


def test_targeted_pgd_moves_towards_target(tiny_model, tiny_batch):
    x, y = tiny_batch
    target = (y + 1) % 4
    x_adv = pgd(tiny_model, x, target, eps=0.3, step_size=0.05, steps=20, targeted=True)
    with torch.no_grad():
        hit = tiny_model(x_adv).argmax(1).eq(target).float().mean()
        before = tiny_model(x).argmax(1).eq(target).float().mean()
    assert hit > before + 0.5


def test_cw_loss_is_the_margin():
    from pgdat.attacks import cw_margin
    logits = torch.tensor([[2.0, 5.0, 1.0], [0.0, -1.0, 3.0]])
    assert torch.allclose(cw_margin(logits, torch.tensor([1, 0])), torch.tensor([2.0 - 5.0, 3.0 - 0.0]))


def test_pgd_stronger_than_fgsm_and_stop_on_success_never_weaker(tiny_model, tiny_batch):
    x, y = tiny_batch
    g = torch.Generator()
    acc = lambda xa: tiny_model(xa).argmax(1).eq(y).float().mean().item()  # noqa: E731
    with torch.no_grad():
        a_fgsm = acc(fgsm(tiny_model, x, y, eps=0.1))
    a_pgd = acc(pgd(tiny_model, x, y, eps=0.1, step_size=0.025, steps=20, generator=g.manual_seed(0)))
    a_pgd_s = acc(pgd(tiny_model, x, y, eps=0.1, step_size=0.025, steps=20, generator=g.manual_seed(0),
                      stop_on_success=True))
    assert a_pgd <= a_fgsm
    assert a_pgd_s <= a_pgd


def test_bf16_autocast_keeps_fp32_perturbation_in_ball(tiny_model, tiny_batch):
    x, y = tiny_batch
    x_adv = pgd(tiny_model, x, y, eps=0.1, step_size=0.025, steps=5, precision="bf16",
                generator=torch.Generator().manual_seed(0))
    assert x_adv.dtype == torch.float32
    assert ((x_adv - x).abs().amax() <= 0.1 + 1e-6) and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(tiny_model(x_adv), y) > F.cross_entropy(tiny_model(x), y)


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": -1.0}, "eps must be"),
    ({"steps": 0}, "steps must be"),
    ({"step_size": -0.1}, "step_size must be"),
    ({"restarts": 0}, "restarts must be"),
    ({"norm": "l3"}, "unknown norm 'l3'; valid norms: linf, l2$"),
    ({"loss": "hinge"}, "unknown attack loss 'hinge'; valid attack losses: ce, cw$"),
    ({"bn_mode": "frozen"}, "unknown bn_mode 'frozen'; valid bn_modes: eval, train, train_frozen_stats$"),
])
def test_bad_arguments_raise_clear_errors(tiny_model, tiny_batch, kwargs, match):
    x, y = tiny_batch
    args = {"eps": 0.1, "step_size": 0.02, "steps": 2} | kwargs
    with pytest.raises(PgdatError, match=match):
        pgd(tiny_model, x, y, **args)


def test_bad_images_raise_clear_errors(tiny_model, tiny_batch):
    x, y = tiny_batch
    with pytest.raises(PgdatError, match=r"\[0,1\]"):
        pgd(tiny_model, x * 255, y, eps=0.1, step_size=0.02, steps=2)
    with pytest.raises(PgdatError, match="float"):
        pgd(tiny_model, (x * 255).to(torch.uint8), y, eps=0.1, step_size=0.02, steps=2)
