"""Temporal ensembling against memorisation (Dong et al., ``dongyp13/memorization-AT`` ``PGD_TE``/``TRADES_TE``).

Per-example soft targets S (N, C) are an EMA (momentum 0.9, zero init) of the model's eval-mode clean
predictions, renormalised per row (bias correction). From ``start_epoch`` (1-indexed) an MSE penalty
w * mean_{b,c}(softmax(f(.)) - s_hat)^2 is added, with w = w_max * r(e) and the sigmoid ramp
r(e) = exp(-5 (1 - (e - start)/(end - start))^2) up to ``end_epoch``. For PGD-AT the penalty also enters the inner
maximisation (as in the authors' code); for TRADES the inner step ascends beta * KL + penalty once the penalty is
on (the authors' ``(beta / B) * KL_sum + w * mean``; plain KL before, as theirs) and the outer penalty uses the
clean logits. S lives in ``ctx.state["te_targets"]`` and is saved in every checkpoint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.attacks.core import attack_mode
from pgdat.errors import PgdatError
from pgdat.methods.base import Number, StepContext, craft
from pgdat.methods.facts import MethodFacts, register_method
from pgdat.methods.trades import KL_ONE_START, TRADES_BETA, kl_to_clean


def te_ramp(epoch: int, start: int, end: int) -> float:
    """Ramp-up r(e) for 1-indexed epoch e: 0 before ``start``, sigmoid-shaped to 1 at ``end``."""
    if epoch < start:
        return 0.0
    if epoch >= end:
        return 1.0
    return math.exp(-5.0 * (1.0 - (epoch - start) / (end - start)) ** 2)


def update_targets(ctx: StepContext, x: torch.Tensor, momentum: float) -> torch.Tensor:
    """EMA-update S at ``ctx.index`` with eval-mode clean softmax; return the renormalised targets s_hat (B, C)."""
    if ctx.index is None:
        raise PgdatError("temporal ensembling needs per-example indices (the trainer provides them)")
    state = ctx.state.get("te_targets")
    if state is None:
        state = ctx.state["te_targets"] = torch.zeros(ctx.n_index, ctx.num_classes, device=x.device)
    with torch.no_grad(), attack_mode(ctx.attack_model, "eval"):
        p = F.softmax(ctx.attack_model(x).float(), dim=1)
    rows = momentum * state[ctx.index] + (1 - momentum) * p
    state[ctx.index] = rows
    return rows / rows.sum(dim=1, keepdim=True).clamp_min(1e-12)


def te_penalty(logits: torch.Tensor, s_hat: torch.Tensor) -> torch.Tensor:
    """Per-example mean over classes of (softmax - s_hat)^2 (B,); its batch mean is the repo's mean over B*C."""
    return (F.softmax(logits.float(), dim=1) - s_hat).pow(2).mean(dim=1)


def _setup(ctx: StepContext, x: torch.Tensor, momentum: float, w_max: float, start_epoch: int,
           end_epoch: int) -> tuple[float, torch.Tensor | None]:
    """(weight w, s_hat or None before ``start_epoch``); checks the attack has one start."""
    if ctx.attack.restarts != 1:
        raise PgdatError("temporal ensembling trains with one attack start: set attack.restarts=1")
    e = ctx.epoch + 1
    if e < start_epoch:
        return 0.0, None
    return w_max * te_ramp(e, start_epoch, end_epoch), update_targets(ctx, x, momentum)


def _check_ramp(where: str, params: dict) -> None:
    """The ramp needs 1 <= start_epoch < end_epoch (1-indexed epochs; te_ramp divides by end - start)."""
    start, end = params["start_epoch"], params["end_epoch"]
    if not start < end:
        raise PgdatError(f"{where} needs start_epoch < end_epoch (got start_epoch={start}, end_epoch={end}); "
                         "Dong et al. ramp the penalty up from epoch 90 to 150")


TE_OPTIONS = {
    "momentum": Number(lo=0, hi=1, hi_open=True, hint="the EMA momentum of the soft targets; Dong et al. use 0.9"),
    "w_max": Number(lo=0, hint="the penalty weight after the ramp; Dong et al. use 300"),
    "start_epoch": Number(lo=1, integer=True, hint="1-indexed first epoch of the penalty; Dong et al. use 90"),
    "end_epoch": Number(lo=1, integer=True, hint="1-indexed epoch where the ramp reaches w_max; Dong et al. use 150"),
}
TE_PAPER = "Dong et al. 2022, Exploring Memorization in Adversarial Training (temporal ensembling)"
TE_REFERENCE = "https://github.com/dongyp13/memorization-AT"
TE_ONE_START = "temporal ensembling trains with one attack start, as Dong et al."


@register_method("pgd_at_te", MethodFacts(
    paper=TE_PAPER, reference=TE_REFERENCE, options=TE_OPTIONS, relation=_check_ramp, one_start=TE_ONE_START,
    passes=lambda b: b.attack() + 1, passes_rule="steps + 1 (attack, CE + penalty on x_adv; one start)",
    forwards=lambda b: 1, forwards_rule="1 from start_epoch on (eval-mode targets), 0 before"))
def pgd_at_te(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, momentum: float = 0.9,
              w_max: float = 300.0, start_epoch: int = 90, end_epoch: int = 150) -> dict[str, torch.Tensor]:
    """PGD-AT + TE: CE(f(x'), y) + w * penalty(f(x')), x' maximising the same objective."""
    w, s_hat = _setup(ctx, x, momentum, w_max, start_epoch, end_epoch)
    if s_hat is None:
        x_adv = craft(ctx, x, y)
    else:
        packed = torch.cat([y[:, None].float(), s_hat], dim=1)  # labels and targets travel together

        def inner(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits.float(), t[:, 0].long(), reduction="none") + w * te_penalty(logits, t[:, 1:])

        x_adv = craft(ctx, x, packed, loss=inner)
    logits = model(x_adv)
    ce = F.cross_entropy(logits.float(), y)
    pen = te_penalty(logits, s_hat).mean() if s_hat is not None else torch.zeros((), device=x.device)
    return {"loss": ce + w * pen, "te_penalty": pen.detach(), "logits_adv": logits}


@register_method("trades_te", MethodFacts(
    paper=TE_PAPER, reference=TE_REFERENCE, options=TE_OPTIONS | {"beta": TRADES_BETA}, relation=_check_ramp,
    one_start=f"{TE_ONE_START}; {KL_ONE_START}",
    passes=lambda b: b.attack() + 2, passes_rule="steps + 2 (KL attack, outer loss on x and x_adv; one start)",
    forwards=lambda b: 2, forwards_rule="2 from start_epoch on (clean probabilities, eval-mode targets), 1 before"))
def trades_te(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, beta: float = 6.0,
              momentum: float = 0.9, w_max: float = 300.0, start_epoch: int = 90, end_epoch: int = 150
              ) -> dict[str, torch.Tensor]:
    """TRADES + TE: inner ascent on KL before ``start_epoch``, then on beta * KL + w * penalty(f(x')) per example
    (dongyp13/memorization-AT loss.py TRADES_TE: (beta / B) sum_b KL_b + w mean_{b,c}, i.e. 1/B times this sum);
    outer CE(f(x)) + beta KL + w * penalty(f(x))."""
    w, s_hat = _setup(ctx, x, momentum, w_max, start_epoch, end_epoch)
    with torch.no_grad(), attack_mode(ctx.attack_model, ctx.attack.bn_mode):
        p_clean = F.softmax(ctx.attack_model(x).float(), dim=1)
    if s_hat is None:
        x_adv = craft(ctx, x, p_clean, loss=kl_to_clean, init="normal")
    else:
        packed = torch.cat([p_clean, s_hat], dim=1)
        c = p_clean.shape[1]

        def inner(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return beta * kl_to_clean(logits, t[:, :c]) + w * te_penalty(logits, t[:, c:])

        x_adv = craft(ctx, x, packed, loss=inner, init="normal")
    logits_clean, logits_adv = model(x), model(x_adv)
    natural = F.cross_entropy(logits_clean.float(), y)
    robust = kl_to_clean(logits_adv, F.softmax(logits_clean.float(), dim=1)).mean()
    pen = te_penalty(logits_clean, s_hat).mean() if s_hat is not None else torch.zeros((), device=x.device)
    return {"loss": natural + beta * robust + w * pen, "te_penalty": pen.detach(), "logits_clean": logits_clean,
            "logits_adv": logits_adv}

