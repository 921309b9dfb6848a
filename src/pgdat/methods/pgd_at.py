"""``pgd_at``: Madry et al.'s min-max training, CE on PGD examples only (the Rice et al. recipe with
``attack.bn_mode=train``)."""

from __future__ import annotations

import torch
from torch import nn

from pgdat.methods.base import StepContext, craft
from pgdat.methods.facts import MethodFacts, register_method
from pgdat.methods.smoothing import label_ce


def pgd_at_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
    """Outer loss on fixed adversarial examples: CE(f(x_adv), y)."""
    logits = model(x_adv)
    return {"loss": label_ce(logits, y), "logits_adv": logits}


@register_method("pgd_at", MethodFacts(
    paper="Madry et al. 2018, Towards Deep Learning Models Resistant to Adversarial Attacks (recipe: Rice et al. "
          "2020, Overfitting in adversarially robust deep learning)",
    reference="https://github.com/locuslab/robust_overfitting",
    passes=lambda b: b.attack() + 1, passes_rule="steps*restarts + 1 (attack, CE on x_adv)"))
def pgd_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
    return pgd_at_objective(model, x, craft(ctx, x, y), y)
