"""``awp`` (Wu, Xia, Wang 2020): adversarial weight perturbation on top of ``pgd_at`` or ``trades``.

Per step: craft x_adv; copy the weights into a proxy and take one SGD step (``proxy_lr``) on the *negative*
base loss; perturb every weight tensor with >= 2 dims by v_l = gamma * ||w_l|| / ||d_l|| * d_l (d = proxy - w);
compute the base loss at w + v (this is what the trainer back-propagates and steps on); remove v after the
optimizer step, so the gradient taken at w + v is applied to w.

``start_epoch`` (1-based, like every epoch in pgdat): the first epoch with a weight perturbation. Wu et al.'s scripts
count epochs differently: AT_AWP/train_cifar10.py tests ``epoch >= awp_warmup`` on 0-based epochs (default 0: from
the first epoch, start_epoch=1), trades_AWP/train_trades_cifar.py on 1-based epochs (default 10: start_epoch=10).
Because d is normalised per layer, ``proxy_lr`` does not change v (the proxy takes one plain SGD step).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from pgdat.methods.base import Number, OneOf, StepContext, craft
from pgdat.methods.facts import Budget, MethodFacts, register_method
from pgdat.methods.pgd_at import pgd_at_objective
from pgdat.methods.trades import KL_ONE_START, TRADES_BETA, trades_inner, trades_objective

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
AWP_BASES = ("pgd_at", "trades")


def weight_perturbation(model: nn.Module, proxy: nn.Module, objective: Objective, x: torch.Tensor,
                        x_adv: torch.Tensor, y: torch.Tensor, gamma: float, proxy_lr: float
                        ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, v) pairs for every weight with >= 2 dims; ``proxy`` is overwritten with the model's state."""
    proxy.load_state_dict(model.state_dict())
    proxy.train()
    opt = torch.optim.SGD(proxy.parameters(), lr=proxy_lr)
    opt.zero_grad(set_to_none=True)
    (-objective(proxy, x, x_adv, y)["loss"]).backward()
    opt.step()
    pairs = []
    with torch.no_grad():
        for w, wp in zip(model.parameters(), proxy.parameters(), strict=True):
            if w.dim() <= 1 or not w.requires_grad:
                continue
            d = wp - w
            pairs.append((w, gamma * w.norm() / (d.norm() + 1e-20) * d))
    return pairs


def awp_passes(b: Budget) -> int:
    """Attack + the base loss's passes (1 for pgd_at, 2 for trades), twice when weights are perturbed (gamma > 0):
    once on the proxy, once at w + v."""
    outer = 1 if b.params["base"] == "pgd_at" else 2
    return b.attack() + outer * (2 if b.params["gamma"] > 0 else 1)


@register_method("awp", MethodFacts(
    paper="Wu, Xia, Wang 2020, Adversarial Weight Perturbation Helps Robust Generalization (AWP)",
    reference="https://github.com/csdongxian/AWP",
    passes=awp_passes, passes_rule="steps*restarts + 2 (base pgd_at) or + 4 (base trades): the base loss on the "
    "proxy and at w + v; + 1 / + 2 with gamma=0 or before start_epoch",
    forwards=lambda b: (b.params["base"] == "trades") + b.scoring(),
    forwards_rule="1 with base trades (clean probabilities), else 0; + restarts when > 1",
    options={
        "base": OneOf(AWP_BASES),
        "gamma": Number(lo=0, hint="Wu et al. use 0.01 (AT-AWP) and 0.005 (TRADES-AWP); 0 turns AWP off"),
        "proxy_lr": Number(lo=0, lo_open=True, hint="Wu et al. use 0.01"),
        "start_epoch": Number(lo=1, integer=True, hint="the first (1-based) epoch with AWP; Wu et al.'s defaults are "
                              "1 (AT-AWP, awp_warmup 0 on 0-based epochs) and 10 (TRADES-AWP, awp_warmup 10 on "
                              "1-based)"),
        "beta": TRADES_BETA,
    }, one_start=lambda p: KL_ONE_START if p["base"] == "trades" else ""))
def awp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, base: str = "pgd_at",
        gamma: float = 0.01, proxy_lr: float = 0.01, start_epoch: int = 1, beta: float = 6.0
        ) -> dict[str, torch.Tensor]:
    """AWP; ``base`` is pgd_at or trades (``beta`` for trades); no perturbation before 1-based ``start_epoch``."""
    if base == "pgd_at":
        x_adv, objective = craft(ctx, x, y), pgd_at_objective
    else:
        x_adv, objective = trades_inner(ctx, x), partial(trades_objective, beta=beta)
    if ctx.epoch + 1 >= start_epoch and gamma > 0:  # ctx.epoch is the trainer's 0-based counter
        target = ctx.attack_model
        proxy = ctx.state.setdefault("awp_proxy", copy.deepcopy(target))
        pairs = weight_perturbation(target, proxy, objective, x, x_adv, y, gamma, proxy_lr)
        with torch.no_grad():
            for w, v in pairs:
                w.add_(v)

        def restore() -> None:
            with torch.no_grad():
                for w, v in pairs:
                    w.sub_(v)

        ctx.after_step.append(restore)
    return objective(model, x, x_adv, y)

