"""Catastrophic-overfitting (CO) monitor: a callback that, every epoch, measures FGSM and multi-step PGD accuracy on
a fixed training batch and on the validation split, and flags CO when multi-step robustness collapses while
single-step accuracy holds.

Rules (``rule``):
* ``ratio`` (library convention, tunable, not from the papers): PGD accuracy < ``ratio`` x its running maximum over
  earlier epochs (which must be >= ``min_peak``) **and** FGSM - PGD accuracy > ``gap``. Measured on the validation
  split when there is one, else on the fixed training batch.
* ``wong`` (Wong et al.'s early stop): PGD accuracy on the fixed training batch drops by more than ``drop`` from
  the previous epoch's check.

Metrics added per epoch: ``co_{train,val}_{fgsm,pgd}_acc``, ``co_detected`` (this epoch fired), ``co_epoch`` (first
epoch that fired, or None). With ``stop`` training ends after the epoch; with ``rollback`` the weights of the last
pre-CO epoch are restored first (kept in memory; after a resume the target is the resumed weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.training.callbacks import CALLBACKS, Callback

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView

DEFAULT_ATTACK = {"ratio": "pgd-10", "wong": "pgd-5"}  # rule -> its multi-step attack (Wong et al.: PGD-5)
RULES = tuple(DEFAULT_ATTACK)


class WeightKeeper:
    """The last known-good weights of a model (a host-memory copy of its state_dict) and when they were kept, so
    a monitor can roll back to them (the CO monitor and the spectrum monitor share it)."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None
        self.when: Any = None

    def keep(self, model: nn.Module, when: Any) -> None:
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.when = when

    def restore(self, run: RunView) -> Any:
        """Roll the run's model back to the kept weights (``run.request_rollback``); returns when they were kept,
        or None (nothing done) if none were."""
        if self.state is None:
            return None
        run.request_rollback(self.state)
        return self.when


def co_fires(rule: str, pgd: float, fgsm: float, history: list[float], *, ratio: float = 0.3, gap: float = 0.3,
             drop: float = 0.2, min_peak: float = 0.05) -> bool:
    """Whether an epoch with accuracies ``pgd``/``fgsm`` (in [0,1]) shows CO given earlier PGD accuracies
    ``history`` (oldest first) of the same monitor set."""
    if not history:
        return False
    if rule == "ratio":
        peak = max(history)
        return peak >= min_peak and pgd < ratio * peak and fgsm - pgd > gap
    if rule == "wong":
        return history[-1] - pgd > drop
    raise PgdatError(f"co_monitor rule must be one of {', '.join(RULES)} (got '{rule}')")


@CALLBACKS.register("co_monitor")
class COMonitor(Callback):
    """Flag catastrophic overfitting each epoch (see the module docstring for the rules and metric keys).

    n_train: size of the fixed training batch (its first images). n_val: validation images used (0 = all).
    attack: the multi-step attack; default ``pgd-10`` for the ratio rule and ``pgd-5`` (Wong et al.'s) for ``wong``.
    """

    def __init__(self, rule: str = "ratio", attack: str | None = None, n_train: int = 256, n_val: int = 500,
                 ratio: float = 0.3, gap: float = 0.3, drop: float = 0.2, min_peak: float = 0.05,
                 stop: bool = False, rollback: bool = False) -> None:
        if rule not in RULES:
            raise PgdatError(f"co_monitor rule must be one of {', '.join(RULES)} (got '{rule}')")
        if not (0 < ratio < 1 and 0 <= gap <= 1 and 0 <= drop <= 1):
            raise PgdatError(f"co_monitor needs 0 < ratio < 1 and gap, drop in [0, 1] (got {ratio}, {gap}, {drop})")
        attack = attack if attack is not None else DEFAULT_ATTACK[rule]
        self.rule, self.attack, self.n_train, self.n_val = rule, attack, n_train, n_val
        self.kw = {"ratio": ratio, "gap": gap, "drop": drop, "min_peak": min_peak}
        self.stop, self.rollback = stop, rollback
        self._good = WeightKeeper()

    def _monitor_key(self, run: RunView) -> str:
        has_val = run.data.val is not None and len(run.data.val) > 0
        return "val" if self.rule == "ratio" and has_val else "train"

    def on_epoch_start(self, run: RunView) -> None:
        if self.rollback and self._good.state is None:  # first epoch of this process (fresh or resumed): its start
            self._good.keep(run.model, run.epoch)

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        from pgdat.analysis.curvature import fgsm_pgd_gap
        from pgdat.data.bundle import as_unit_float

        cfg = run.cfg
        splits = [("train", run.data.train, self.n_train), ("val", run.data.val, self.n_val)]
        for name, split, n in splits:
            if split is None or len(split) == 0:
                continue
            n = min(n or len(split), len(split))
            x, y = as_unit_float(split.x[:n].to(run.device)), split.y[:n].to(run.device)
            was_training = run.attack_model.training
            run.attack_model.eval()
            res = fgsm_pgd_gap(run.attack_model, x, y, eps=cfg.attack.eps, norm=cfg.attack.norm,
                               attack=self.attack, batch_size=cfg.eval.batch_size, seed=cfg.train.seed,
                               box=run.box)
            run.attack_model.train(was_training)
            metrics[f"co_{name}_fgsm_acc"], metrics[f"co_{name}_pgd_acc"] = res["fgsm_acc"], res["pgd_acc"]
        key = self._monitor_key(run)
        earlier = [m[f"co_{key}_pgd_acc"] for m in run.history if m.get(f"co_{key}_pgd_acc") is not None]
        fired = co_fires(self.rule, metrics[f"co_{key}_pgd_acc"], metrics[f"co_{key}_fgsm_acc"], earlier, **self.kw)
        previous = next((m["co_epoch"] for m in run.history if m.get("co_epoch") is not None), None)
        metrics["co_detected"] = fired
        metrics["co_epoch"] = previous if previous is not None else (metrics["epoch"] if fired else None)
        if fired and (self.stop or self.rollback):
            if self.rollback and self._good.restore(run) is not None:
                metrics["co_rolled_back_to_epoch"] = self._good.when
            run.request_stop(f"catastrophic overfitting at epoch {metrics['epoch']} ({self.rule} rule)")
        elif self.rollback and not fired:
            self._good.keep(run.model, metrics["epoch"])
