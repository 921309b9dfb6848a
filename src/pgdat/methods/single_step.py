"""Single-step adversarial training: ``fgsm_at`` (zero init, step eps), ``rs_fgsm`` (Wong et al.: uniform init,
step 1.25 eps, projected) and ``n_fgsm`` (de Jorge et al.: noise U[-k eps, k eps], step eps, no projection).

All three use the configured ``attack.eps``/``norm``/``bn_mode`` (and its eps warm-up); ``attack.steps`` and
``attack.step_size`` are ignored (one step, the step size below). Each registers the CO monitor as a default callback.
"""

from __future__ import annotations

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.methods.base import Number, StepContext, craft, train_eps
from pgdat.methods.facts import MethodFacts, register_method
from pgdat.methods.pgd_at import pgd_at_objective

# on by default for single-step methods (configure it in train.callbacks); registered by pgdat.training.co_monitor
CO_MONITOR = ({"name": "co_monitor"},)
# the cost of every single-step method here: one attack step per start, then CE on x_adv
SINGLE_STEP_COST = {"passes": lambda b: b.attack(1) + 1, "passes_rule": "restarts + 1 (one attack step, CE on x_adv)"}


def _step(default: str) -> Number:
    """A step size in multiples of attack.eps: > 0."""
    return Number(lo=0, lo_open=True, hint=f"a multiple of attack.eps; {default}")


def single_step(ctx: StepContext, x: torch.Tensor, y: torch.Tensor, *, alpha: float, init: str,
                init_scale: float = 1.0, project: bool = True) -> torch.Tensor:
    """One signed-gradient step of length ``alpha * eps`` from ``init``; x_adv (B, C, H, W) in [0,1]."""
    if not alpha > 0:
        raise PgdatError(f"single-step alpha must be > 0 (a multiple of attack.eps; got {alpha})")
    return craft(ctx, x, y, init=init, steps=1, step_size=alpha * train_eps(ctx), init_scale=init_scale,
                 project=project)


@register_method("fgsm_at", MethodFacts(
    paper="Goodfellow, Shlens, Szegedy 2015, Explaining and Harnessing Adversarial Examples (FGSM training; step eps "
          "from zero as in Wong et al. 2020 and de Jorge et al. 2022)",
    reference="https://github.com/locuslab/fast_adversarial", step="large", **SINGLE_STEP_COST,
    options={"alpha": _step("FGSM-AT steps eps (alpha 1)")}))
def fgsm_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, alpha: float = 1.0
            ) -> dict[str, torch.Tensor]:
    """FGSM-AT: delta = eps-clip(alpha * eps * sign grad) from zero; alpha = 1 (step = eps) as co_features."""
    return pgd_at_objective(model, x, single_step(ctx, x, y, alpha=alpha, init="zero"), y)


@register_method("rs_fgsm", MethodFacts(
    paper="Wong, Rice, Kolter 2020, Fast is better than free: Revisiting adversarial training (RS-FGSM)",
    reference="https://github.com/locuslab/fast_adversarial", step="large", **SINGLE_STEP_COST,
    options={"alpha": _step("Wong et al. use 1.25"),
             "init_scale": Number(lo=0, hint="the start's radius in multiples of eps; Wong et al. use 1")}))
def rs_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, alpha: float = 1.25,
            init_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """RS-FGSM (Wong et al.): uniform start in the init_scale*eps ball, step alpha*eps (1.25 eps), eps-clip, box."""
    return pgd_at_objective(model, x, single_step(ctx, x, y, alpha=alpha, init="uniform", init_scale=init_scale), y)


@register_method("n_fgsm", MethodFacts(
    paper="de Jorge et al. 2022, Make Some Noise: Reliable and Efficient Single-Step Adversarial Training (N-FGSM)",
    reference="https://github.com/pdejorge/N-FGSM", step="large", **SINGLE_STEP_COST,
    options={"alpha": _step("de Jorge et al. use 1"),
             "k": Number(lo=0, hint="the noise radius in multiples of eps; de Jorge et al. use 2 (4 or 3 at large "
                         "radii); 0 is unprojected FGSM")}))
def n_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, k: float = 2.0,
           alpha: float = 1.0) -> dict[str, torch.Tensor]:
    """N-FGSM (de Jorge et al.): noise U[-k eps, k eps] (k = 2), step alpha*eps (= eps), no eps-projection, box only:
    ||delta||_inf <= (k + alpha) eps."""
    return pgd_at_objective(model, x, single_step(ctx, x, y, alpha=alpha, init="uniform", init_scale=k,
                                                  project=False), y)


for _fn in (fgsm_at, rs_fgsm, n_fgsm):
    _fn.default_callbacks = CO_MONITOR  # type: ignore[attr-defined]
