"""Every registered method: finite loss, gradients everywhere; method-specific invariants."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from pgdat.config import AttackConfig
from pgdat.errors import PgdatError
from pgdat.methods import METHODS, StepContext, build_method
from pgdat.methods.trades import kl_to_clean, trades_inner

ATTACK = AttackConfig(eps=0.1, step_size=0.025, steps=5, init="uniform", bn_mode="eval")


def _ctx(model, seed=0, attack=ATTACK, epoch=0):
    """A context as the trainer builds it (indices, class counts) for the 64-example tiny batch."""
    return StepContext(attack=attack, attack_model=model, generator=torch.Generator().manual_seed(seed), epoch=epoch,
                       index=torch.arange(64), n_index=64, num_classes=4, class_counts=torch.tensor([40, 30, 20, 10]))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_gives_finite_loss_and_gradient_to_every_parameter(tiny_model, tiny_batch, name):
    x, y = tiny_batch
    tiny_model.train()
    ctx = _ctx(tiny_model)
    out = build_method(name, {})(tiny_model, x, y, ctx)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    tiny_model.zero_grad()
    out["loss"].backward()
    for fn in ctx.after_step:
        fn()
    for n, p in tiny_model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n


def test_unknown_method_and_option_errors():
    with pytest.raises(PgdatError, match="valid methods: .*pgd_at"):
        build_method("pgd-at", {})
    with pytest.raises(PgdatError, match="valid options: beta"):
        build_method("trades", {"lambda": 1.0})


def test_trades_inner_maximisation_uses_kl_not_labels(tiny_model, tiny_batch):
    """The KL attack never looks at labels: permuting y leaves x' unchanged (a CE attack would change it)."""
    x, y = tiny_batch
    attack = AttackConfig(eps=0.1, step_size=0.025, steps=5, init="normal")
    a = trades_inner(_ctx(tiny_model, attack=attack), x)
    b = trades_inner(_ctx(tiny_model, attack=attack), x)
    assert torch.equal(a, b)
    with torch.no_grad():
        p = F.softmax(tiny_model(x), 1)
        kl_adv = kl_to_clean(tiny_model(a), p).mean()
        kl_start = kl_to_clean(tiny_model(x + 0.001 * torch.randn_like(x)), p).mean()
    assert kl_adv > 10 * kl_start
    from pgdat.methods.base import craft
    ce_adv = craft(_ctx(tiny_model, attack=attack), x, (y + 1) % 4)  # CE attack towards other labels
    assert not torch.allclose(ce_adv, a)
    out = build_method("trades", {})(tiny_model, x, y, _ctx(tiny_model, attack=attack))
    out_perm = build_method("trades", {})(tiny_model, x, y.roll(1), _ctx(tiny_model, attack=attack))
    assert torch.equal(out["logits_adv"], out_perm["logits_adv"])  # same x' whatever the labels


def test_trades_beta_zero_is_clean_ce(tiny_model, tiny_batch):
    x, y = tiny_batch
    out = build_method("trades", {"beta": 0.0})(tiny_model, x, y, _ctx(tiny_model))
    assert torch.allclose(out["loss"], F.cross_entropy(tiny_model(x), y))


def test_mart_finite_with_saturated_softmax(tiny_model, tiny_batch):
    x, y = tiny_batch
    big = copy.deepcopy(tiny_model)
    with torch.no_grad():
        big.fc.weight.mul_(1e3)
    out = build_method("mart", {})(big, x, y, _ctx(big))
    assert torch.isfinite(out["loss"])


def test_awp_step_applies_gradient_at_perturbed_weights_to_original(tiny_model, tiny_batch):
    """Plain SGD: one AWP step gives exactly w - lr * grad L(w + v), and 1-D parameters are never perturbed."""
    x, y = tiny_batch
    tiny_model.train()
    w0 = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    opt = torch.optim.SGD(tiny_model.parameters(), lr=0.1)
    ctx = _ctx(tiny_model)
    out = build_method("awp", {"gamma": 0.05})(tiny_model, x, y, ctx)
    perturbed = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    for n, p in tiny_model.named_parameters():
        changed = not torch.equal(perturbed[n], w0[n])
        assert changed == (p.dim() > 1), n
        if p.dim() > 1:  # |v| = gamma |w|
            assert torch.allclose((perturbed[n] - w0[n]).norm(), 0.05 * w0[n].norm(), rtol=1e-4)
    opt.zero_grad()
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in tiny_model.named_parameters()}
    opt.step()
    for fn in ctx.after_step:
        fn()
    for n, p in tiny_model.named_parameters():
        assert torch.allclose(p, w0[n] - 0.1 * grads[n], atol=1e-6), n


def test_awp_warmup_leaves_weights_alone(tiny_model, tiny_batch):
    x, y = tiny_batch
    w0 = [p.detach().clone() for p in tiny_model.parameters()]
    ctx = _ctx(tiny_model, epoch=0)
    build_method("awp", {"start_epoch": 2})(tiny_model, x, y, ctx)
    assert ctx.after_step == [] and all(torch.equal(a, b) for a, b in zip(w0, tiny_model.parameters(), strict=True))


@pytest.mark.parametrize("epoch", [1, 9, 10, 11])
def test_awp_perturbs_from_the_references_epoch(tiny_model, tiny_batch, epoch):
    """csdongxian/AWP trades_AWP/train_trades_cifar.py: ``for epoch in range(1, epochs + 1)`` and
    ``if epoch >= args.awp_warmup`` (default 10): TRADES-AWP perturbs the weights from the 10th epoch on."""
    x, y = tiny_batch
    reference_on = epoch >= 10
    ctx = _ctx(tiny_model, epoch=epoch - 1)  # the trainer's 0-based counter of the 1-based epoch
    build_method("awp", {"base": "trades", "gamma": 0.005, "start_epoch": 10})(tiny_model, x, y, ctx)
    assert (len(ctx.after_step) == 1) == reference_on
