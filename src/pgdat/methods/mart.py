"""``mart`` (Wang et al. 2020): boosted CE on x' + lam * KL(p || p') weighted by (1 - p_y), misclassification-aware."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.methods.base import Number, StepContext, craft
from pgdat.methods.facts import MethodFacts, register_method


def mart_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, lam: float
                   ) -> dict[str, torch.Tensor]:
    """MART loss with the reference code's stabilisers (1e-12 inside logs, 1.0001 and 1.0000001 offsets)."""
    logits_clean, logits_adv = model(x), model(x_adv)
    adv_probs = F.softmax(logits_adv.float(), dim=1)
    top2 = adv_probs.argsort(dim=1)[:, -2:]
    runner_up = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    bce = F.cross_entropy(logits_adv.float(), y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), runner_up)
    nat_probs = F.softmax(logits_clean.float(), dim=1)
    true_probs = nat_probs.gather(1, y[:, None]).squeeze(1)
    kl = (nat_probs * (torch.log(nat_probs + 1e-12) - torch.log(adv_probs + 1e-12))).sum(dim=1)
    robust = (kl * (1.0000001 - true_probs)).mean()
    return {"loss": bce + lam * robust, "loss_bce": bce.detach(), "loss_robust": robust.detach(),
            "logits_clean": logits_clean, "logits_adv": logits_adv}


@register_method("mart", MethodFacts(
    paper="Wang et al. 2020, Improving Adversarial Robustness Requires Revisiting Misclassified Examples (MART)",
    reference="https://github.com/YisenWang/MART",
    passes=lambda b: b.attack() + 2, passes_rule="steps*restarts + 2 (attack, outer loss on x and x_adv)",
    options={"lam": Number(lo=0, hint="Wang et al. use 5 (ResNet-18) and 6 (WRN-34-10)")}))
def mart(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, lam: float = 5.0
         ) -> dict[str, torch.Tensor]:
    return mart_objective(model, x, craft(ctx, x, y), y, lam)

