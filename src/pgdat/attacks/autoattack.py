"""Evaluation-only wrapper around the reference AutoAttack implementation (``pyautoattack``, Croce & Hein)."""

from __future__ import annotations

import torch
from torch import nn

from pgdat.errors import PgdatError

AA_NORMS = {"linf": "Linf", "l2": "L2"}


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    attacks: list[str] | None = None,
    seed: int = 0,
    batch_size: int = 250,
) -> torch.Tensor:
    """Run AutoAttack on (x (B, C, H, W) in [0,1], y (B,)); returns x_adv.

    attacks: None runs ``version='standard'`` (APGD-CE, APGD-T, FAB-T, Square with the reference settings);
    a list such as ``["apgd-ce"]`` runs ``version='custom'`` with just those. The model must be in eval mode.
    """
    try:
        from pyautoattack import AutoAttack
    except ImportError:  # pragma: no cover - a declared dependency
        raise PgdatError("AutoAttack needs the reference package: pip install pyautoattack==0.2.0") from None
    if norm not in AA_NORMS:
        raise PgdatError(f"AutoAttack supports norms {', '.join(AA_NORMS)} (got '{norm}')")
    if eps <= 0:
        return x.detach().clone()
    version = "standard" if attacks is None else "custom"
    adversary = AutoAttack(model, attacks=attacks, device=x.device, eps=float(eps), norm=AA_NORMS[norm], seed=seed,
                           version=version)
    adversary.verbose = False
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    return x_adv.detach()
