"""``standard``: plain cross-entropy training on clean inputs (the baseline every AT method is compared to)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.methods.base import METHODS, StepContext


@METHODS.register("standard")
def standard(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
    logits = model(x)
    return {"loss": F.cross_entropy(logits.float(), y), "logits_clean": logits}
