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

from pgdat.config.schema import AttackConfig
from pgdat.methods.base import ATTACK_PRESETS, OneOf, StepContext, craft
from pgdat.methods.facts import Budget, MethodFacts, register_method
from pgdat.methods.pgd_at import pgd_at_objective

SWITCH, ACTIVE = "attack_switch", "attack_active"  # ctx.state keys


def active_preset(ctx: StepContext, before: str, after: str) -> str:
    """``after`` from the switch epoch on (``ctx.state["attack_switch"]["epoch"]``, 0-based), else ``before``."""
    at = (ctx.state.get(SWITCH) or {}).get("epoch")
    return after if at is not None and ctx.epoch >= at else before


def preset_passes(b: Budget, preset: str) -> int:
    """Attack passes per example of :data:`ATTACK_PRESETS` ``preset``, read from the preset itself: its own steps
    (pgd2: 2, fgsm and fgsm_rs: 1) or the configured ones (pgd), x restarts; 0 for none."""
    fields = ATTACK_PRESETS.get(preset)(StepContext(AttackConfig(steps=b.steps, restarts=b.restarts), nn.Identity()))
    return 0 if fields is None else b.attack(fields.get("steps"))


def _switch_passes(b: Budget) -> int:
    return max(preset_passes(b, b.params["before"]), preset_passes(b, b.params["after"])) + 1


@register_method("pgd_at_switch", MethodFacts(
    paper="the NTK-AT notes' time-saving schedules T1/T2 (a reading of Li et al. 2023, not verified)", reference="",
    passes=_switch_passes, passes_rule="the costlier phase's attack passes + 1: steps*restarts (pgd), 2*restarts "
    "(pgd2), restarts (fgsm, fgsm_rs) or 0 (none), then CE on x_adv",
    options={"before": OneOf(ATTACK_PRESETS), "after": OneOf(ATTACK_PRESETS)}))
def pgd_at_switch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext, before: str = "pgd",
                  after: str = "fgsm_rs") -> dict[str, torch.Tensor]:
    """CE on examples crafted with preset ``before`` (default the configured PGD) until the switch, ``after``
    (default fgsm_rs) from then on."""
    name = active_preset(ctx, before, after)
    ctx.state[ACTIVE] = name
    return pgd_at_objective(model, x, craft(ctx, x, y, preset=name), y)


pgd_at_switch.default_callbacks = ({"name": "attack_switch"},)  # type: ignore[attr-defined]
