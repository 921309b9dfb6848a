"""``grad_align`` (Andriushchenko & Flammarion 2020): FGSM-AT plus lambda * (1 - mean cos(grad_x l(x1), grad_x l(x1 +
eta))), eta ~ U[-eps, eps]; the second gradient is built with ``create_graph`` (double backprop).

``first_point``: ``clean`` (x1 = x, the original method, tml-epfl/understanding-fast-adv-training train.py) or
``adv`` (x1 = the FGSM point, as gortizji/co_features train/utils.py ``GradAlign``); either way the second gradient is
taken at x + eta, around the *clean* point, as both references do.
``bn_mode``: how BatchNorm runs for the two alignment gradients. Default ``train``: both references keep the model in
train mode for the whole step (batch statistics; running statistics updated by these passes too). ``eval`` or
``train_frozen_stats`` are deliberate alternatives; null follows ``attack.bn_mode``.
``lam``: None uses the paper's rule lambda(eps) = exp(255 eps ln10 / 8 + ln 0.02) (0.2 at 8/255, 2 at 16/255), capped
at its 16/255 value (2.0, with a warning) beyond the radii it was used at.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.attacks.core import BN_MODES, attack_mode
from pgdat.methods.base import Number, OneOf, StepContext, train_eps
from pgdat.methods.facts import MethodFacts, register_method
from pgdat.methods.pgd_at import pgd_at_objective
from pgdat.methods.single_step import CO_MONITOR, single_step

FIRST_POINTS = ("clean", "adv")
MAX_RULE_EPS = 16 / 255  # the largest radius the paper's lambda rule was used at


def grad_align_lambda(eps: float) -> float:
    """The paper's lambda for a radius ``eps`` in pixel units: exp(255 eps ln10 / 8 + ln 0.02)."""
    return math.exp(255.0 * eps * math.log(10.0) / 8.0 + math.log(0.02))


def input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, create_graph: bool) -> torch.Tensor:
    """grad_x of the summed CE at x (B, C, H, W); with ``create_graph`` it stays differentiable in the weights."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x).float(), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x, create_graph=create_graph)
    return g


def alignment_penalty(model: nn.Module, x1: torch.Tensor, y: torch.Tensor, eps: float,
                      generator: torch.Generator | None = None, x2: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - mean cos, mean cos) over examples whose gradients are both nonzero; cos between grad at x1 (detached)
    and grad at x2 + eta (double backprop; x2 defaults to x1), eta ~ U[-eps, eps] (not clipped to the box, as the
    paper's code). Inputs (B, C, H, W)."""
    g1 = input_grad(model, x1, y, create_graph=False).flatten(1)
    x2 = x1 if x2 is None else x2
    gen_device = generator.device if generator is not None else x2.device
    eta = (2 * torch.rand(x2.shape, generator=generator, device=gen_device) - 1).to(x2.device) * eps
    g2 = input_grad(model, x2 + eta, y, create_graph=True).flatten(1)
    n1, n2 = g1.norm(dim=1), g2.norm(dim=1)
    ok = (n1 > 0) & (n2 > 0)
    cos = (g1 * g2).sum(1) / (n1 * n2).clamp_min(1e-30)
    cos = torch.where(ok, cos, torch.zeros_like(cos))
    mean_cos = cos.sum() / ok.sum().clamp_min(1)
    return 1.0 - mean_cos, mean_cos.detach()


@register_method("grad_align", MethodFacts(
    paper="Andriushchenko & Flammarion 2020, Understanding and Improving Fast Adversarial Training (GradAlign)",
    reference="https://github.com/tml-epfl/understanding-fast-adv-training", step="large",
    passes=lambda b: b.attack(1) + 1 + (2 if b.params["lam"] != 0 else 0),
    passes_rule="restarts + 1 + 2 (FGSM, CE on x_adv, the two alignment gradients, the second one differentiated "
    "again: double backprop); restarts + 1 with lam=0",
    options={
        "lam": Number(lo=0, optional=True, hint="leave it unset (null) for the paper's lambda(eps): 0.2 at 8/255, 2 "
                      "at 16/255; 0 is FGSM-AT"),
        "first_point": OneOf(FIRST_POINTS),
        "bn_mode": OneOf(BN_MODES, optional=True),
    }))
def grad_align(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, lam: float | None = None,
               first_point: str = "clean", bn_mode: str | None = "train") -> dict[str, torch.Tensor]:
    """FGSM (zero init, step eps) loss + lam * (1 - cos); returns also ``grad_align_cos`` (detached)."""
    eps = train_eps(ctx)
    if lam is None:
        if ctx.attack.eps > MAX_RULE_EPS + 1e-9:
            warnings.warn(f"grad_align: the paper's lambda(eps) rule covers eps <= 16/255 (got {ctx.attack.eps:.4g}); "
                          "using its value at 16/255, lambda = 2.0; set method.params.lam to choose", stacklevel=2)
        lam = grad_align_lambda(min(ctx.attack.eps, MAX_RULE_EPS))
    x_adv = single_step(ctx, x, y, alpha=1.0, init="zero")
    out = pgd_at_objective(model, x, x_adv, y)
    if lam > 0 and eps > 0:
        x1 = x if first_point == "clean" else x_adv
        with attack_mode(model, bn_mode or ctx.attack.bn_mode):
            reg, cos = alignment_penalty(model, x1, y, eps, ctx.generator, x2=x)
        out["loss"] = out["loss"] + lam * reg
        out["grad_align_cos"] = cos
    return out


grad_align.default_callbacks = CO_MONITOR  # type: ignore[attr-defined]
