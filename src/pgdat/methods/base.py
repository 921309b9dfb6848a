"""What every training method shares: the registry, the step context and the training attack.

A method is a loss: ``method(model, x, y, ctx, **params) -> dict`` with at least ``"loss"`` (a scalar tensor to
minimise) and optionally ``"logits_clean"`` / ``"logits_adv"`` (B, K) from its own forward passes, which the trainer
turns into train-set accuracies without extra passes. The trainer owns optimisation; a method that must act after
the optimizer step (AWP restoring weights) appends a callable to ``ctx.after_step``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from pgdat.attacks.core import AttackSpec, perturb
from pgdat.attacks.losses import AttackLoss
from pgdat.config.schema import AttackConfig
from pgdat.errors import PgdatError
from pgdat.registry import Registry
from pgdat.threat import ThreatModel

Method = Callable[..., dict[str, torch.Tensor]]
METHODS: Registry[Method] = Registry("method")


@dataclass
class StepContext:
    """Per-step information a method may use.

    attack: the configured training attack. attack_model: the model to craft examples on (the unwrapped module
    under DDP). generator: seeds random starts. precision: autocast for attack passes. epoch: 0-based epoch;
    progress: fractional epochs done. index: the batch's source indices. state: per-method persistent state, kept
    across steps; its tensor and dict entries are saved in checkpoints and restored on resume.
    """

    attack: AttackConfig
    attack_model: nn.Module
    generator: torch.Generator | None = None
    precision: str = "fp32"
    epoch: int = 0
    progress: float = 0.0
    index: torch.Tensor | None = None  # (B,) source indices of the batch's examples (per-example state)
    n_index: int = 0  # 1 + the largest source index of the training split (size of per-example state tables)
    num_classes: int = 0
    class_counts: torch.Tensor | None = None  # (C,) training examples per class (long-tailed methods)
    state: dict[str, Any] = field(default_factory=dict)
    after_step: list[Callable[[], None]] = field(default_factory=list)


def eps_ramp(ctx: StepContext) -> float:
    """Warm-up factor in [0, 1] at ``ctx.progress``: linear over ``attack.eps_warmup_epochs`` (1 when that is 0)."""
    w = ctx.attack.eps_warmup_epochs
    return min(1.0, ctx.progress / w) if w > 0 else 1.0


def train_eps(ctx: StepContext) -> float:
    """The training radius at ``ctx.progress`` (pixel units): ``attack.eps`` times :func:`eps_ramp`."""
    return ctx.attack.eps * eps_ramp(ctx)


def craft(
    ctx: StepContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str | AttackLoss | None = None,
    init: str | None = None,
    **overrides: Any,
) -> torch.Tensor:
    """Adversarial examples for training with the configured attack (``overrides`` replace AttackSpec fields).

    With ``attack.eps_warmup_epochs`` the radius and step size grow linearly with ``ctx.progress``.
    """
    a = ctx.attack
    ramp = eps_ramp(ctx)
    spec_kw = {"threat": ThreatModel(a.norm, a.eps * ramp), "step_size": a.step_size * ramp, "steps": a.steps,
               "init": init or a.init} | overrides
    return perturb(ctx.attack_model, x, y, AttackSpec(**spec_kw), loss=loss or a.loss, restarts=a.restarts,
                   bn_mode=a.bn_mode, precision=ctx.precision, generator=ctx.generator, check=False)


def build_method(name: str, params: dict[str, Any]) -> Method:
    """Look up a method and bind its options; unknown options raise a :class:`PgdatError` listing the valid ones."""
    fn = METHODS.get(name)
    sig = inspect.signature(fn)
    valid = [p for p in list(sig.parameters)[4:]]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise PgdatError(f"method '{name}' has no option {', '.join(unknown)}; valid options: "
                         f"{', '.join(valid) or 'none'}")
    bound = partial(fn, **params)
    bound.__name__ = name  # type: ignore[attr-defined]
    return bound
