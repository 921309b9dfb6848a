"""What every training method shares: the registry, the step context and the training attack.

A method is a loss: ``method(model, x, y, ctx, **params) -> dict`` with at least ``"loss"`` (a scalar tensor to
minimise) and optionally ``"logits_clean"`` / ``"logits_adv"`` (B, K) from its own forward passes, which the trainer
turns into train-set accuracies without extra passes. The trainer owns optimisation; a method that must act after
the optimizer step (AWP restoring weights) appends a callable to ``ctx.after_step``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from pgdat.attacks.core import AttackSpec, perturb
from pgdat.attacks.losses import AttackLoss
from pgdat.config.schema import AttackConfig
from pgdat.errors import PgdatError, first_option, unknown_options_error
from pgdat.registry import Registry
from pgdat.threat import BOXES, ThreatModel

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


def ramp_at(attack: AttackConfig, progress: float) -> float:
    """Warm-up factor in [0, 1] after ``progress`` epochs: linear over ``attack.eps_warmup_epochs`` (1 when that
    is 0)."""
    w = attack.eps_warmup_epochs
    return min(1.0, progress / w) if w > 0 else 1.0


def eps_ramp(ctx: StepContext) -> float:
    """Warm-up factor in [0, 1] at ``ctx.progress`` (:func:`ramp_at`)."""
    return ramp_at(ctx.attack, ctx.progress)


def train_eps(ctx: StepContext) -> float:
    """The training radius at ``ctx.progress`` (pixel units): ``attack.eps`` times :func:`eps_ramp`."""
    return ctx.attack.eps * eps_ramp(ctx)


def train_threat(ctx: StepContext, eps: float | None = None) -> ThreatModel:
    """The training threat model: ``attack.norm``, radius ``eps`` (default :func:`train_eps`), box ``attack.box``."""
    a = ctx.attack
    return ThreatModel(a.norm, train_eps(ctx) if eps is None else eps, BOXES[a.box])


# ctx.state keys (dicts, so they are saved in checkpoints): a callback's attack override {"preset": name, ...} and
# the run's cumulative attack cost {"grad_evals": int} (per process)
ATTACK_OVERRIDE, ATTACK_COST = "attack_override", "attack_cost"
# preset name -> fn(ctx) -> AttackSpec fields that replace the configured attack's (None: no attack). Radii and
# step sizes follow the eps warm-up. Used by pgd_at_switch (the NTK notes' T1/T2 schedules) and CO remedies.
ATTACK_PRESETS: Registry[Callable[[StepContext], dict[str, Any] | None]] = Registry("attack preset")


@ATTACK_PRESETS.register("pgd")
def _preset_pgd(ctx: StepContext) -> dict[str, Any]:
    """The configured attack (attack.steps, attack.step_size, attack.init) unchanged."""
    return {}


@ATTACK_PRESETS.register("pgd2")
def _preset_pgd2(ctx: StepContext) -> dict[str, Any]:
    """PGD-2: uniform start in the ball, 2 projected steps of 0.5 eps (library choice; eps-ball and box)."""
    return {"steps": 2, "step_size": 0.5 * train_eps(ctx), "init": "uniform", "init_scale": 1.0, "project": True}


@ATTACK_PRESETS.register("fgsm_rs")
def _preset_fgsm_rs(ctx: StepContext) -> dict[str, Any]:
    """RS-FGSM (Wong et al.): uniform start, one projected step of 1.25 eps (as method rs_fgsm)."""
    return {"steps": 1, "step_size": 1.25 * train_eps(ctx), "init": "uniform", "init_scale": 1.0, "project": True}


@ATTACK_PRESETS.register("fgsm")
def _preset_fgsm(ctx: StepContext) -> dict[str, Any]:
    """FGSM from zero, one step of eps (as method fgsm_at)."""
    return {"steps": 1, "step_size": train_eps(ctx), "init": "zero", "project": True}


@ATTACK_PRESETS.register("none")
def _preset_none(ctx: StepContext) -> None:
    """No attack: the clean batch (standard training for that phase)."""
    return None


def preset_fields(ctx: StepContext, preset: str | None) -> dict[str, Any] | None:
    """AttackSpec fields of ``preset`` then of the state's override (which wins); {} when neither; None: no attack."""
    override = (ctx.state.get(ATTACK_OVERRIDE) or {}).get("preset")
    fields: dict[str, Any] | None = {}
    for name in (preset, override):
        if name is not None:
            fields = ATTACK_PRESETS.get(name)(ctx)
    return fields


def add_grad_evals(ctx: StepContext, n: int) -> None:
    """Add ``n`` per-example input-gradient evaluations to the run's attack cost (a Python int: no host sync)."""
    cost = ctx.state.setdefault(ATTACK_COST, {"grad_evals": 0})
    cost["grad_evals"] += int(n)


def craft(
    ctx: StepContext,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str | AttackLoss | None = None,
    init: str | None = None,
    preset: str | None = None,
    **overrides: Any,
) -> torch.Tensor:
    """Adversarial examples for training with the configured attack (``overrides`` replace AttackSpec fields).

    ``preset`` (an :data:`ATTACK_PRESETS` name) replaces the attack's steps/step size/init on top of ``overrides``;
    a preset in ``ctx.state["attack_override"]`` (set by a callback, e.g. the spectrum monitor's ``pgd2`` remedy)
    replaces both. Preset ``none`` returns ``x`` unattacked. Every call adds len(x) * steps * restarts input-gradient
    evaluations to ``ctx.state["attack_cost"]["grad_evals"]`` (restarts > 1: an upper bound).

    With ``attack.eps_warmup_epochs`` the radius and step size grow linearly with ``ctx.progress``. The image box
    is ``attack.box`` (the trainer resolves ``auto`` from the data; outside a trainer ``auto`` means [0,1]).
    """
    a = ctx.attack
    fields = preset_fields(ctx, preset)
    if fields is None:  # the "none" preset: clean inputs, no gradient evaluations
        add_grad_evals(ctx, 0)
        return x.detach()
    ramp = eps_ramp(ctx)
    spec_kw = {"threat": train_threat(ctx), "step_size": a.step_size * ramp, "steps": a.steps,
               "init": init or a.init} | overrides
    spec_kw |= fields
    add_grad_evals(ctx, len(x) * spec_kw["steps"] * a.restarts)
    return perturb(ctx.attack_model, x, y, AttackSpec(**spec_kw), loss=loss or a.loss, restarts=a.restarts,
                   bn_mode=a.bn_mode, precision=ctx.precision, generator=ctx.generator, check=False)


@dataclass(frozen=True)
class Number:
    """A numeric option's valid range: finite and ``lo (<|<=) value (<|<=) hi``; ints pass where floats are expected,
    bools and text never do. ``integer``: an int only; ``optional``: None is allowed too (the method's own default)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    optional: bool = False
    hint: str = ""  # what the papers use, e.g. "Zhang et al. use 6"

    def describe(self) -> str:
        """The range as text: ">= 0", "> 0", "in [0, 1)", or "" when unbounded."""
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return ""

    def summary(self) -> str:
        """Type and range for a listing: "integer >= 1", "number in [0, 1)", "number >= 0 or null"."""
        text = " ".join(filter(None, ("integer" if self.integer else "number", self.describe())))
        return text + (" or null" if self.optional else "")

    def check(self, where: str, value: Any) -> None:
        if value is None and self.optional:
            return
        ok = not isinstance(value, bool) and isinstance(value, int if self.integer else int | float)
        ok = ok and (isinstance(value, int) or math.isfinite(value))  # an int is finite (and may exceed a float)
        if ok and self.lo is not None:
            ok = value > self.lo if self.lo_open else value >= self.lo
        if ok and self.hi is not None:
            ok = value < self.hi if self.hi_open else value <= self.hi
        if not ok:
            what = " ".join(filter(None, ("an integer" if self.integer else "a finite number", self.describe(),
                                          "or null" if self.optional else "")))
            raise PgdatError(f"{where} must be {what} (got {value!r}){'; ' + self.hint if self.hint else ''}")


@dataclass(frozen=True)
class OneOf:
    """A named option's valid values: a tuple, or a :class:`Registry` (read at check time, so later registrations
    count). ``optional``: None is allowed too (the method's own default)."""

    names: Collection[str]
    optional: bool = False

    def summary(self) -> str:
        """The valid values for a listing: "one of clamp, project" (", or null" when optional)."""
        names = sorted(self.names) if isinstance(self.names, Registry) else self.names
        return f"one of {', '.join(names)}" + (", or null" if self.optional else "")

    def check(self, where: str, value: Any) -> None:
        if (value is None and self.optional) or (isinstance(value, str) and value in self.names):
            return
        kind = getattr(self.names, "kind", "value")
        valid = ", ".join(sorted(self.names) if isinstance(self.names, Registry) else self.names)
        raise PgdatError(f"{where}: unknown {kind} {value!r}; valid {kind}s: {valid}"
                         f"{' (or null for the default)' if self.optional else ''}")


def option_checks(fn: Method, rules: dict[str, Number | OneOf],
                  relation: Callable[[str, dict[str, Any]], None] | None = None) -> Method:
    """Attach ``fn.check_params`` (run by :func:`build_method`, so at config validation): every given option
    against its rule, then ``relation("method 'name'", options)`` on all options (defaults filled in) for checks
    across options. Returns fn.

    The messages name the method (``fn.__name__``, its registered name) and the option.
    """
    defaults = {k: p.default for k, p in list(inspect.signature(fn).parameters.items())[4:]}

    def check_params(**params: Any) -> None:
        for option, value in params.items():
            if option in rules:
                rules[option].check(f"method '{fn.__name__}' option {option}", value)
        if relation is not None:
            relation(f"method '{fn.__name__}'", defaults | params)

    fn.check_params = check_params  # type: ignore[attr-defined]
    return fn


def build_method(name: str, params: dict[str, Any]) -> Method:
    """Look up a method and bind its options; unknown options raise a :class:`PgdatError` listing the valid ones,
    and values out of range one naming the option and its range (the method's ``check_params``, see
    :func:`option_checks`). Config validation calls this, so bad options fail before any data is loaded.

    The result's ``replays`` attribute is how many optimizer steps the trainer takes on each minibatch: 1, or for
    a method with a ``replay_option`` attribute (Free-AT's ``m``) the value of that option (its ``check_params``
    must require an integer >= 1).
    """
    fn = METHODS.get(name)
    sig = inspect.signature(fn)
    valid = [p for p in list(sig.parameters)[4:]]
    unknown = set(params) - set(valid)
    if unknown:
        example = first_option({k: sig.parameters[k].default for k in valid})
        raise unknown_options_error(f"method '{name}'", unknown, valid, f"method.params={{{example}}}")
    check = getattr(fn, "check_params", None)  # a method's own validation of its option values
    if check is not None:
        check(**params)
    bound = partial(fn, **params)
    bound.__name__ = name  # type: ignore[attr-defined]
    bound.replays = 1  # type: ignore[attr-defined]
    option = getattr(fn, "replay_option", None)  # its range is checked by the method's check_params above
    if option is not None:
        bound.replays = params.get(option, sig.parameters[option].default)  # type: ignore[attr-defined]
    return bound
