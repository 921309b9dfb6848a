"""Per-example attack objectives: ``loss(logits (B, K), y (B,)) -> (B,)``, larger = more adversarial."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pgdat.registry import Registry

AttackLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: Registry[AttackLoss] = Registry("attack loss")


@LOSSES.register("ce")
def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each example (B,)."""
    return F.cross_entropy(logits.float(), y, reduction="none")


@LOSSES.register("cw")
def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin max_{j != y} z_j - z_y (B,); positive once the example is misclassified."""
    z = logits.float()
    z_y = z.gather(1, y[:, None]).squeeze(1)
    others = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf"))
    return others.amax(dim=1) - z_y


def resolve_loss(loss: str | AttackLoss) -> AttackLoss:
    """A registered loss name or a callable ``(logits, y) -> (B,)``."""
    return loss if callable(loss) else LOSSES.get(loss)
