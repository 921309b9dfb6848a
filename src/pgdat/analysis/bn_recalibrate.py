"""Post-hoc BatchNorm re-estimation (reading R3 of the NTK-AT notes, not verified against Li et al.): replace the
running statistics, which AT accumulates on adversarial (and, with train-mode crafting, intermediate PGD) batches,
by a cumulative average (``momentum=None``) over clean, adversarial or mixed batches.

:func:`recalibrate_bn` works on any model; the ``bn_recalibrate`` callback
(:class:`pgdat.training.bn_recal_callback.BNRecalibrate`) applies it to
a run's best.pt and last.pt after training and reports both next to the unrecalibrated results in final.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from pgdat.errors import PgdatError

SOURCES = ("clean", "adv", "mixed")
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, source: str = "clean",
                   attack: dict[str, Any] | None = None, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's running mean/var as the cumulative average over ``batches`` of (x (B, C, H, W)
    in [0, 1], y (B,)); ``adv``/``mixed`` craft PGD examples with ``attack`` (pgd kwargs) in eval mode first (mixed:
    clean and adversarial halves concatenated). Restores the model's mode and each BN's momentum; returns the
    number of images used."""
    if source not in SOURCES:
        raise PgdatError(f"source must be one of {', '.join(SOURCES)} (got '{source}')")
    if source != "clean" and not attack:
        raise PgdatError(f"source='{source}' needs attack=dict(eps=..., step_size=..., steps=...)")
    bns = [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]
    if not bns:
        raise PgdatError("the model has no BatchNorm layer with running statistics to recalibrate")
    was_training, momenta = model.training, [m.momentum for m in bns]
    g, n = torch.Generator().manual_seed(seed), 0
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
        for x, y in batches:
            if source != "clean":
                from pgdat.attacks import pgd

                model.eval()
                with torch.enable_grad():
                    x_adv = pgd(model, x, y, generator=g, **attack)
                x = x_adv if source == "adv" else torch.cat([x, x_adv])
            model.train()
            model(x)
            n += len(x)
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)
    if n == 0:
        raise PgdatError("recalibrate_bn got no batches")
    return n


def recal_batches(split: Any, n: int, batch_size: int, *, seed: int = 0, device: str | torch.device = "cpu"
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Full batches (x (batch_size, C, H, W) in [0,1], y) of ``n`` images of ``split`` drawn without replacement
    by ``seed``, no augmentation; a short last batch is dropped unless it is the only one (the cumulative average
    weights every batch equally)."""
    from pgdat.data.bundle import as_unit_float

    n = min(n, len(split.y))
    pos = torch.randperm(len(split.y), generator=torch.Generator().manual_seed(seed))[:n]
    starts = range(0, max(n - batch_size, 0) + 1, batch_size)
    return [(as_unit_float(split.x[pos[i:i + batch_size]].to(device)), split.y[pos[i:i + batch_size]].to(device))
            for i in starts]
