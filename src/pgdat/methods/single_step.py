"""Single-step adversarial training: ``fgsm_at`` (zero init, step eps), ``rs_fgsm`` (Wong et al.: uniform init,
step 1.25 eps, projected) and ``n_fgsm`` (de Jorge et al.: noise U[-k eps, k eps], step eps, no projection).

All three use the configured ``attack.eps``/``norm``/``bn_mode`` (and its eps warm-up); ``attack.steps`` and
``attack.step_size`` are ignored (one step, the step size below). Each registers the CO monitor as a default callback.
"""

from __future__ import annotations

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.methods.base import METHODS, Number, StepContext, craft, option_checks, train_eps
from pgdat.methods.pgd_at import pgd_at_objective

# on by default for single-step methods (configure it in train.callbacks); registered by pgdat.training.co_monitor
CO_MONITOR = ({"name": "co_monitor"},)


def single_step(ctx: StepContext, x: torch.Tensor, y: torch.Tensor, *, alpha: float, init: str,
                init_scale: float = 1.0, project: bool = True) -> torch.Tensor:
    """One signed-gradient step of length ``alpha * eps`` from ``init``; x_adv (B, C, H, W) in [0,1]."""
    if not alpha > 0:
        raise PgdatError(f"single-step alpha must be > 0 (a multiple of attack.eps; got {alpha})")
    return craft(ctx, x, y, init=init, steps=1, step_size=alpha * train_eps(ctx), init_scale=init_scale,
                 project=project)


@METHODS.register("fgsm_at")
def fgsm_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, alpha: float = 1.0
            ) -> dict[str, torch.Tensor]:
    """FGSM-AT: delta = eps-clip(alpha * eps * sign grad) from zero; alpha = 1 (step = eps) as co_features."""
    return pgd_at_objective(model, x, single_step(ctx, x, y, alpha=alpha, init="zero"), y)


@METHODS.register("rs_fgsm")
def rs_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, alpha: float = 1.25,
            init_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """RS-FGSM (Wong et al.): uniform start in the init_scale*eps ball, step alpha*eps (1.25 eps), eps-clip, box."""
    return pgd_at_objective(model, x, single_step(ctx, x, y, alpha=alpha, init="uniform", init_scale=init_scale), y)


@METHODS.register("n_fgsm")
def n_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, k: float = 2.0,
           alpha: float = 1.0) -> dict[str, torch.Tensor]:
    """N-FGSM (de Jorge et al.): noise U[-k eps, k eps] (k = 2), step alpha*eps (= eps), no eps-projection, box only:
    ||delta||_inf <= (k + alpha) eps."""
    return pgd_at_objective(model, x, single_step(ctx, x, y, alpha=alpha, init="uniform", init_scale=k,
                                                  project=False), y)


def _step(default: str) -> Number:
    """A step size in multiples of attack.eps: > 0."""
    return Number(lo=0, lo_open=True, hint=f"a multiple of attack.eps; {default}")


option_checks(fgsm_at, {"alpha": _step("FGSM-AT steps eps (alpha 1)")})
option_checks(rs_fgsm, {"alpha": _step("Wong et al. use 1.25"),
                        "init_scale": Number(lo=0, hint="the start's radius in multiples of eps; Wong et al. use 1")})
option_checks(n_fgsm, {"alpha": _step("de Jorge et al. use 1"),
                       "k": Number(lo=0, hint="the noise radius in multiples of eps; de Jorge et al. use 2 "
                                   "(4 or 3 at large radii); 0 is unprojected FGSM")})
for _fn in (fgsm_at, rs_fgsm, n_fgsm):
    _fn.default_callbacks = CO_MONITOR  # type: ignore[attr-defined]
