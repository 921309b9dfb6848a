"""``trades`` (Zhang et al. 2019): CE(f(x), y) + beta * KL(p(x) || p(x')), with x' maximising the KL term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.attacks.core import attack_mode
from pgdat.methods.base import Number, StepContext, craft
from pgdat.methods.facts import MethodFacts, register_method
from pgdat.methods.smoothing import label_ce

# TRADES's beta: Zhang et al. use 6 on CIFAR (their README: 1 to 10); 0 is clean training on x
TRADES_BETA = Number(lo=0, hint="Zhang et al. use 6 (their README recommends 1 to 10)")
# restarts keep, per example, the start that changes the predicted label; the KL attack's targets are probabilities
KL_ONE_START = "its KL attack has soft targets, and restarts keep the start that changes a hard label"


def kl_to_clean(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Per-example KL(p_clean || softmax(logits_adv)) (B,): the TRADES inner objective (target = clean probs)."""
    log_p_adv = F.log_softmax(logits_adv.float(), dim=1)
    return (p_clean * (torch.log(p_clean.clamp_min(1e-12)) - log_p_adv)).sum(dim=1)


def trades_inner(ctx: StepContext, x: torch.Tensor) -> torch.Tensor:
    """x' = argmax KL(p(x) || p(x')) by PGD from x + 0.001 N(0, I); clean probabilities from the attack-mode model."""
    with torch.no_grad(), attack_mode(ctx.attack_model, ctx.attack.bn_mode):
        p_clean = F.softmax(ctx.attack_model(x).float(), dim=1)
    return craft(ctx, x, p_clean, loss=kl_to_clean, init="normal")


def trades_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, beta: float
                     ) -> dict[str, torch.Tensor]:
    """Outer TRADES loss; gradients flow through both the clean and the adversarial logits (batch-mean KL)."""
    logits_clean, logits_adv = model(x), model(x_adv)
    natural = label_ce(logits_clean, y)  # optim.label_smoothing applies here (Wang et al. 2023)
    robust = kl_to_clean(logits_adv, F.softmax(logits_clean.float(), dim=1)).mean()
    return {"loss": natural + beta * robust, "loss_natural": natural.detach(), "loss_robust": robust.detach(),
            "logits_clean": logits_clean, "logits_adv": logits_adv}


@register_method("trades", MethodFacts(
    paper="Zhang et al. 2019, Theoretically Principled Trade-off between Robustness and Accuracy (TRADES)",
    reference="https://github.com/yaodongyu/TRADES",
    passes=lambda b: b.attack() + 2, passes_rule="steps*restarts + 2 (KL attack, outer loss on x and x_adv)",
    forwards=lambda b: 1 + b.scoring(), forwards_rule="1 (clean probabilities) + restarts when > 1",
    options={"beta": TRADES_BETA}, one_start=KL_ONE_START))
def trades(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, beta: float = 6.0
           ) -> dict[str, torch.Tensor]:
    return trades_objective(model, x, trades_inner(ctx, x), y, beta)

