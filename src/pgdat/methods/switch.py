"""``pgd_at_switch``: PGD-AT whose inner attack switches once, from ``before`` to a cheaper ``after``.

The time-saving schedules T1/T2 of the NTK-AT notes (reading of Li et al. 2023's "more time-saving AT methods"; the
paper's algorithm and switch rule are NOT verified): a costly attack while the kernel is still learning, then a
cheap one (fgsm_rs, fgsm, pgd2) or none (standard training) once it is lazy. The objective is pgd_at's, CE on the
crafted examples; ``before``/``after`` are :data:`pgdat.methods.base.ATTACK_PRESETS` names.

*When* to switch is decided by the ``attack_switch`` callback (:mod:`pgdat.training.attack_switch`, added by
default): a fixed epoch (T1) or the NTK velocity staying below a threshold (T2). It writes the first epoch of the
``after`` phase into ``ctx.state["attack_switch"]["epoch"]`` (saved in checkpoints); without it the method stays
on ``before``. Each step records the preset it used in ``ctx.state["attack_active"]``.
"""

from __future__ import annotations

import torch
from torch import nn

from pgdat.methods.base import ATTACK_PRESETS, METHODS, OneOf, StepContext, craft, option_checks
from pgdat.methods.pgd_at import pgd_at_objective

SWITCH, ACTIVE = "attack_switch", "attack_active"  # ctx.state keys


def active_preset(ctx: StepContext, before: str, after: str) -> str:
    """``after`` from the switch epoch on (``ctx.state["attack_switch"]["epoch"]``, 0-based), else ``before``."""
    at = (ctx.state.get(SWITCH) or {}).get("epoch")
    return after if at is not None and ctx.epoch >= at else before


@METHODS.register("pgd_at_switch")
def pgd_at_switch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, before: str = "pgd",
                  after: str = "fgsm_rs") -> dict[str, torch.Tensor]:
    """CE on examples crafted with preset ``before`` (default the configured PGD) until the switch, ``after``
    (default fgsm_rs) from then on."""
    name = active_preset(ctx, before, after)
    ctx.state[ACTIVE] = name
    return pgd_at_objective(model, x, craft(ctx, x, y, preset=name), y)


option_checks(pgd_at_switch, {"before": OneOf(ATTACK_PRESETS), "after": OneOf(ATTACK_PRESETS)})
pgd_at_switch.default_callbacks = ({"name": "attack_switch"},)  # type: ignore[attr-defined]
