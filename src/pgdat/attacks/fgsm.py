"""Single-step attacks: FGSM (zero init), RS-FGSM (uniform init, step 1.25 eps) and N-FGSM (noise 2 eps, no
projection) are all settings of :func:`fgsm`."""

from __future__ import annotations

import torch
from torch import nn

from pgdat.attacks.core import AttackSpec, perturb
from pgdat.attacks.losses import AttackLoss
from pgdat.threat import UNIT_BOX, ThreatModel


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float | None = None,
    init: str = "zero",
    init_scale: float = 1.0,
    project: bool = True,
    norm: str = "linf",
    box: tuple[float, float] | None = UNIT_BOX,
    loss: str | AttackLoss = "ce",
    targeted: bool = False,
    bn_mode: str = "eval",
    generator: torch.Generator | None = None,
    precision: str = "fp32",
    check: bool = True,
) -> torch.Tensor:
    """One gradient step from ``init``; returns detached x_adv (B, C, H, W) in [0,1].

    step_size: defaults to eps. init: ``zero`` | ``uniform`` (in the ball of radius init_scale*eps) | ``normal``.
    project: clip the result to the eps-ball (False for N-FGSM, which only keeps [0,1]). box: the pixel range
    (default [0,1]); None for data outside [0,1] (only the eps-ball, see :class:`pgdat.threat.ThreatModel`).
    FGSM: defaults. RS-FGSM: ``init="uniform", step_size=1.25*eps``. N-FGSM: ``init="uniform", init_scale=2,
    project=False``.
    """
    spec = AttackSpec(
        threat=ThreatModel(norm, eps, box),
        step_size=eps if step_size is None else step_size,
        steps=1,
        init=init,
        init_scale=init_scale,
        project=project,
        targeted=targeted,
    )
    return perturb(model, x, y, spec, loss=loss, bn_mode=bn_mode, precision=precision, generator=generator,
                   check=check)
