"""``standard``: plain cross-entropy training on clean inputs (the baseline every AT method is compared to)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.methods.base import StepContext
from pgdat.methods.facts import MethodFacts, register_method


@register_method("standard", MethodFacts(
    paper="clean training (the baseline every adversarial-training paper compares to)", reference="",
    attacks=False, step="none", passes=lambda b: 1, passes_rule="1 (the clean loss)",
    forwards=lambda b: 0, forwards_rule="0"))
def standard(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
    logits = model(x)
    return {"loss": F.cross_entropy(logits.float(), y), "logits_clean": logits}
