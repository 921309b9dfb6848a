"""``attack_switch``: when ``pgd_at_switch`` moves from its costly attack to its cheap one.

Rules (``rule``; the NTK-AT notes section 4, readings of Li et al. 2023, NOT verified against the paper):
* ``epoch`` (T1): switch at a fixed epoch E_s, ``epoch`` (0-based index of the first cheap epoch, i.e. after E_s
  completed epochs) or ``at`` x ``train.epochs`` rounded (default at = 0.3; the notes suggest 25-40 %).
* ``ntk_velocity`` (T2): switch once the NTK velocity (the ``ntk_snapshot`` callback's ``ntk_velocity`` metric,
  kernel distance between consecutive snapshots per epoch) has been below ``tau`` for ``patience`` consecutive
  measurements; the next epoch is the first cheap one. Needs ``{name: ntk_snapshot}`` listed before this callback
  in ``train.callbacks``. tau and patience are library defaults, not paper values.

Per epoch it logs ``attack_active`` (the preset the epoch's last step used), ``attack_switch_epoch`` (completed
epochs before the first cheap epoch; None before the switch) and, for ``ntk_velocity``, ``attack_switch_below``
(the current run of measurements below tau). The trainer logs the cumulative ``attack_grad_evals`` of every run.
State lives in the run's ``state["attack_switch"]`` (the method's ``ctx.state``, saved in checkpoints), so a
resumed run keeps its switch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from pgdat.errors import PgdatError
from pgdat.methods.switch import ACTIVE, SWITCH
from pgdat.registry import Registry
from pgdat.training.callbacks import CALLBACKS, Callback

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView

# rule name -> fn(callback, run, metrics or None at an epoch start, state) -> 0-based switch epoch or None
SWITCH_RULES: Registry[Callable[..., int | None]] = Registry("switch rule")


@SWITCH_RULES.register("epoch")
def _epoch_rule(cb: AttackSwitch, run: RunView, metrics: dict[str, Any] | None, state: dict) -> int | None:
    """T1: the fixed epoch, known from the start."""
    return cb.epoch if cb.epoch is not None else round(cb.at * run.cfg.train.epochs)


@SWITCH_RULES.register("ntk_velocity")
def _velocity_rule(cb: AttackSwitch, run: RunView, metrics: dict[str, Any] | None, state: dict) -> int | None:
    """T2: after ``patience`` consecutive velocity measurements below ``tau``, from the next epoch on."""
    if metrics is None:
        return None
    v = metrics.get(cb.metric)
    if v is None:  # no snapshot this epoch (ntk_snapshot every > 1, or its first measurement)
        return None
    state["below"] = state.get("below", 0) + 1 if v < cb.tau else 0
    metrics["attack_switch_below"] = state["below"]
    return run.epoch if state["below"] >= cb.patience else None


@CALLBACKS.register("attack_switch")
class AttackSwitch(Callback):
    """Decide ``pgd_at_switch``'s switch epoch (module docstring); added by default for that method."""

    def __init__(self, rule: str = "epoch", at: float = 0.3, epoch: int | None = None, tau: float = 0.01,
                 patience: int = 2, metric: str = "ntk_velocity") -> None:
        SWITCH_RULES.get(rule)
        if not 0 <= at <= 1 or (epoch is not None and epoch < 0):
            raise PgdatError(f"attack_switch needs at in [0, 1] (fraction of train.epochs) and epoch >= 0 or None "
                             f"(got at={at}, epoch={epoch})")
        if not tau > 0 or patience < 1:
            raise PgdatError(f"attack_switch needs tau > 0 and patience >= 1 (got tau={tau}, patience={patience})")
        self.rule, self.at, self.epoch, self.tau, self.patience, self.metric = rule, at, epoch, tau, patience, metric
        self._checked = False

    def _check_order(self, run: RunView) -> None:
        """The velocity rule reads a metric that an earlier callback must have written in the same epoch."""
        from pgdat.training.ntk_snapshot import NTKSnapshot

        self._checked = True
        if self.rule != "ntk_velocity":
            return
        cbs = run.callbacks
        ntk = [i for i, cb in enumerate(cbs) if isinstance(cb, NTKSnapshot)]
        if not ntk or ntk[0] > cbs.index(self):
            raise PgdatError("attack_switch rule=ntk_velocity reads the ntk_snapshot callback's ntk_velocity: list "
                             "{name: ntk_snapshot} before {name: attack_switch} in train.callbacks")

    def _decide(self, run: RunView, metrics: dict[str, Any] | None) -> None:
        state = run.state.setdefault(SWITCH, {"epoch": None})
        if state.get("epoch") is not None:
            return
        at = SWITCH_RULES.get(self.rule)(self, run, metrics, state)
        if run.dist.enabled:  # ranks can see different measurements (e.g. NTK's first): switch together
            from pgdat.training.distributed import all_reduce_sum

            flag = all_reduce_sum(torch.tensor([0.0 if at is None else 1.0], device=run.device), run.dist)
            at = run.epoch if at is None and float(flag) > 0 else at
        state["epoch"] = at

    def on_epoch_start(self, run: RunView) -> None:
        if not self._checked:
            self._check_order(run)
        self._decide(run, None)

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        metrics["attack_active"] = run.state.get(ACTIVE)
        self._decide(run, metrics)
        metrics["attack_switch_epoch"] = run.state[SWITCH]["epoch"]
