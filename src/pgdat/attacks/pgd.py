"""Projected gradient descent (Madry et al.) with restarts, CE or CW-margin loss, targeted or not."""

from __future__ import annotations

import torch
from torch import nn

from pgdat.attacks.core import AttackSpec, perturb
from pgdat.attacks.losses import AttackLoss
from pgdat.threat import UNIT_BOX, ThreatModel


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "linf",
    box: tuple[float, float] | None = UNIT_BOX,
    restarts: int = 1,
    random_start: bool = True,
    init: str | None = None,
    loss: str | AttackLoss = "ce",
    targeted: bool = False,
    bn_mode: str = "eval",
    generator: torch.Generator | None = None,
    precision: str = "fp32",
    stop_on_success: bool = False,
    check: bool = True,
) -> torch.Tensor:
    """PGD-``steps`` in the ``norm`` ball of radius ``eps`` (pixel units); returns detached x_adv (B, C, H, W).

    x: images in [0,1] (B, C, H, W); y: labels (B,) (target labels when ``targeted``). box: the pixel range
    (default [0,1]); None for data outside [0,1] (only the eps-ball, see :class:`pgdat.threat.ThreatModel`).
    random_start: uniform start in the ball (else start at x); ``init`` overrides it (``zero``/``uniform``/``normal``).
    loss: ``ce``, ``cw`` (margin) or a callable ``(logits, y) -> (B,)``.
    bn_mode: ``eval`` (Madry/TRADES) or ``train`` (robust_overfitting) for the attack's forward passes; the
    model's own mode is restored afterwards. precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` autocast for the
    forward/backward passes (the perturbation stays fp32). generator: seeds the random starts.
    stop_on_success: freeze examples once misclassified (evaluation).
    """
    spec = AttackSpec(
        threat=ThreatModel(norm, eps, box),
        step_size=step_size,
        steps=steps,
        init=init or ("uniform" if random_start else "zero"),
        targeted=targeted,
        stop_on_success=stop_on_success,
    )
    return perturb(model, x, y, spec, loss=loss, restarts=restarts, bn_mode=bn_mode, precision=precision,
                   generator=generator, check=check)
