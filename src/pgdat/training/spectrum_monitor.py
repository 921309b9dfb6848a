"""``spectrum_monitor``: flag catastrophic overfitting (CO) from a jump in a spectral statistic of the empirical NTK
on a fixed probe, and optionally act on the flag.

Readings C1/C2 of the NTK-AT notes (Li et al. 2023's "spectrum feature inside the kernel" against CO; the paper's
statistic, rule and hyperparameters are NOT verified): every ``every`` epochs (or every ``every_steps`` optimizer
steps) compute ``stat`` (:data:`SPECTRAL_STATS`) on ``probe`` class-balanced training images (BatchNorm in eval
mode), then the robust jump score against the earlier measurements (:func:`mad_jump`):

    score = (s_t - median(H)) / max(MAD(H), floor * |median(H)|, 1e-12),  H = the last ``window`` earlier values,
    MAD(H) = median(|H - median(H)|) (raw, not scaled by 1.4826)

and flag when ``score > z`` (``direction=up``), ``< -z`` (``down``) or ``|score| > z`` (``both``). No score, and so
no flag, until H holds ``min_history`` values; every measurement, flagged or not, enters H (so a lasting level
shift stops flagging after about window/2 measurements; ``spectral_flag_epoch`` keeps the first flag). The
relative floor keeps a flat history (MAD = 0) from flagging noise. z, window, min_history and floor are library
defaults, not paper values.

Metrics per epoch: ``spectral_stat`` (the last measurement), ``spectral_score``, ``spectral_flag`` (a flag this
epoch), ``spectral_flag_epoch`` (first flagged epoch, 1-based like the CO monitor's ``co_epoch``), with
``every_steps`` also ``spectral_flag_step``; with the CO monitor on, its ``co_detected``/``co_epoch`` ground truth
sits in the same rows (:func:`flag_lead` compares the two). ``on_flag`` actions (:data:`FLAG_ACTIONS`, any of):
``rollback`` (weights of the last unflagged measurement, the CO monitor's :class:`WeightKeeper`), ``pgd2`` (every
later craft() uses the PGD-2 preset: ``ctx.state["attack_override"]``; methods that do not craft, e.g. free_at,
are unaffected), ``stop`` (end training after this epoch). As with the CO monitor, a rollback restores weights and
buffers, not the optimizer state. Off unless configured. The step counter, the history and the rollback weights
live in the run's ``state`` (the method's ``ctx.state``, saved in checkpoints), so a resumed run measures at the
same steps and rolls back to the same weights as an uninterrupted one.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.registry import Registry
from pgdat.training.callbacks import CALLBACKS, Callback
from pgdat.training.co_monitor import WeightKeeper

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView

STATE = "spectrum_monitor"  # run.state key: {"history": [floats], "flag_epoch", "flag_step", "steps"}
KEPT = "spectrum_monitor_kept"  # run.state key of the rollback weights: {"state": state_dict, "when"}
DIRECTIONS = ("up", "down", "both")


def mad_jump(history: list[float], value: float, *, window: int = 5, min_history: int = 3,
             floor: float = 0.05) -> float | None:
    """Robust jump score of ``value`` against the last ``window`` values of ``history`` (module docstring);
    None when fewer than ``min_history`` earlier values exist."""
    h = history[-window:]
    if len(h) < min_history:
        return None
    med = statistics.median(h)
    mad = statistics.median(abs(v - med) for v in h)
    return (value - med) / max(mad, floor * abs(med), 1e-12)


# ------------------------------------------------------------------------------------------ spectral statistics
SPECTRAL_STATS: Registry[Callable[..., float]] = Registry("spectral statistic")


@SPECTRAL_STATS.register("lambda_max")
def _lambda_max(cb: SpectrumMonitor, model: nn.Module, x: torch.Tensor, y: torch.Tensor, run: RunView) -> float:
    """Largest eigenvalue of the full eNTK on the probe (power iteration, ``iters`` JVP/VJP rounds)."""
    from pgdat.analysis.ntk import lambda_max

    return lambda_max(model, x, iters=cb.iters, seed=cb.seed, bn_mode=cb.bn_mode)


@SPECTRAL_STATS.register("effective_rank")
def _effective_rank(cb: SpectrumMonitor, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    run: RunView) -> float:
    """Effective rank of the trace eNTK on the probe."""
    from pgdat.analysis.ntk import empirical_ntk, spectrum

    return spectrum(empirical_ntk(model, x, kind="trace", bn_mode=cb.bn_mode))["effective_rank"]


@SPECTRAL_STATS.register("clean_adv_distance")
def _clean_adv_distance(cb: SpectrumMonitor, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        run: RunView) -> float:
    """Kernel distance S(K(x), K(x_adv)) of the trace eNTKs on the probe and on its PGD-``adv_steps`` examples
    (the run's eps, norm and image box, step 2.5 eps / steps, crafted in eval mode with a fixed seed)."""
    from pgdat.analysis.ntk import empirical_ntk, kernel_distance
    from pgdat.attacks import pgd

    a = run.cfg.attack
    x_adv = pgd(model, x, y, eps=a.eps, norm=a.norm, box=run.box, steps=cb.adv_steps,
                step_size=2.5 * a.eps / cb.adv_steps, generator=torch.Generator(device=x.device).manual_seed(cb.seed))
    return kernel_distance(empirical_ntk(model, x, kind="trace", bn_mode=cb.bn_mode),
                           empirical_ntk(model, x_adv, kind="trace", bn_mode=cb.bn_mode))


# ------------------------------------------------------------------------------------------------ flag actions
FLAG_ACTIONS: Registry[Callable[..., Any]] = Registry("on_flag action")


@FLAG_ACTIONS.register("rollback")
def _rollback(cb: SpectrumMonitor, run: RunView) -> Any:
    """Restore the weights of the last unflagged measurement; returns when they were kept (None: nothing kept)."""
    return cb.keeper.restore(run)


@FLAG_ACTIONS.register("pgd2")
def _pgd2(cb: SpectrumMonitor, run: RunView) -> str:
    """Every later craft() uses the PGD-2 preset (kept in the method state, so it survives a resume)."""
    run.override_attack("pgd2")
    return "pgd2"


@FLAG_ACTIONS.register("stop")
def _stop(cb: SpectrumMonitor, run: RunView) -> str:
    """End training after the current epoch."""
    reason = f"spectral CO flag ({cb.stat}) at epoch {run.epoch}"
    run.request_stop(reason)
    return reason


@CALLBACKS.register("spectrum_monitor")
class SpectrumMonitor(Callback):
    """Spectral CO flag (module docstring). probe: probe size; seed: probe and power-iteration seed; every: epochs
    between measurements; every_steps: measure every N optimizer steps instead (0 = per epoch; a host sync each)."""

    def __init__(self, stat: str = "lambda_max", probe: int = 32, seed: int = 0, every: int = 1, every_steps: int = 0,
                 z: float = 5.0, window: int = 5, min_history: int = 3, floor: float = 0.05, direction: str = "both",
                 on_flag: str | list[str] = (), iters: int = 10, adv_steps: int = 5, bn_mode: str = "eval") -> None:
        SPECTRAL_STATS.get(stat)
        actions = [on_flag] if isinstance(on_flag, str) else list(on_flag)
        for name in actions:
            FLAG_ACTIONS.get(name)
        if direction not in DIRECTIONS:
            raise PgdatError(f"spectrum_monitor direction must be one of {', '.join(DIRECTIONS)} (got '{direction}')")
        if probe < 2 or every < 1 or every_steps < 0 or iters < 1 or adv_steps < 1:
            raise PgdatError(f"spectrum_monitor needs probe >= 2, every >= 1, every_steps >= 0, iters >= 1 and "
                             f"adv_steps >= 1 (got {probe}, {every}, {every_steps}, {iters}, {adv_steps})")
        if not z > 0 or window < 1 or not 1 <= min_history <= window or floor < 0:
            raise PgdatError(f"spectrum_monitor needs z > 0, 1 <= min_history <= window and floor >= 0 (got z={z}, "
                             f"window={window}, min_history={min_history}, floor={floor})")
        self.stat, self.n, self.seed, self.every, self.every_steps = stat, probe, seed, every, every_steps
        self.z, self.window, self.min_history, self.floor, self.direction = z, window, min_history, floor, direction
        self.actions, self.iters, self.adv_steps, self.bn_mode = actions, iters, adv_steps, bn_mode
        self.keeper = WeightKeeper()
        self._epoch_log: dict[str, Any] = {}
        self._probe: tuple[torch.Tensor, torch.Tensor] | None = None

    def probe_batch(self, run: RunView) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed class-balanced probe: images (n, C, H, W) in [0,1] and labels (n,) on the run's device."""
        if self._probe is None:
            from pgdat.analysis.ntk import training_probe

            self._probe = training_probe(run.data.train, self.n, self.seed, run.device)[:2]
        return self._probe

    def _fires(self, score: float | None) -> bool:
        if score is None:
            return False
        return {"up": score > self.z, "down": score < -self.z, "both": abs(score) > self.z}[self.direction]

    @staticmethod
    def _state(run: RunView) -> dict[str, Any]:
        return run.state.setdefault(STATE, {"history": [], "flag_epoch": None, "flag_step": None})

    def measure(self, run: RunView) -> dict[str, Any]:
        """One measurement: statistic, score, flag, and the actions taken on a flag; updates the saved state."""
        state = self._state(run)
        x, y = self.probe_batch(run)
        value = float(SPECTRAL_STATS.get(self.stat)(self, run.model, x, y, run))
        score = mad_jump(state["history"], value, window=self.window, min_history=self.min_history, floor=self.floor)
        state["history"] = (state["history"] + [value])[-self.window:]
        fired = self._fires(score)
        out: dict[str, Any] = {"spectral_stat": value, "spectral_score": score, "spectral_flag": fired}
        if fired:
            out["spectral_actions"] = {name: FLAG_ACTIONS.get(name)(self, run) for name in self.actions}
        elif "rollback" in self.actions:
            self.keeper.keep(run.model, {"epoch": run.epoch, "step": state.get("steps", 0)})
            run.state[KEPT] = {"state": self.keeper.state, "when": self.keeper.when}
        return out

    def on_epoch_start(self, run: RunView) -> None:
        self._epoch_log = {}
        kept = run.state.get(KEPT)
        if self.keeper.state is None and kept is not None:  # resumed: the weights an uninterrupted run had kept
            self.keeper.state, self.keeper.when = kept["state"], kept["when"]

    def on_step_end(self, run: RunView, out: dict[str, Any]) -> None:
        if not self.every_steps:
            return
        state = self._state(run)
        state["steps"] = steps = state.get("steps", 0) + 1  # optimizer steps of the run (saved: resumes count on)
        if steps % self.every_steps:
            return
        rec = self.measure(run)
        if rec["spectral_flag"]:
            self._epoch_log["spectral_flag"] = True
            self._epoch_log.setdefault("spectral_actions", rec["spectral_actions"])
            if state["flag_step"] is None:
                state["flag_step"], state["flag_epoch"] = steps, run.epoch + 1
        self._epoch_log |= {"spectral_stat": rec["spectral_stat"], "spectral_score": rec["spectral_score"]}

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        if self.every_steps:
            rec = {"spectral_flag": False} | self._epoch_log
        elif run.epoch % self.every == 0:
            rec = self.measure(run)
            state = run.state[STATE]
            if rec["spectral_flag"] and state["flag_epoch"] is None:
                state["flag_epoch"] = run.epoch
        else:
            return
        state = run.state.get(STATE) or {}
        metrics |= rec | {"spectral_flag_epoch": state.get("flag_epoch")}
        if self.every_steps:
            metrics["spectral_flag_step"] = state.get("flag_step")


def flag_lead(history: list[dict[str, Any]]) -> dict[str, Any]:
    """From a run's per-epoch metrics: the first spectral flag epoch, the CO monitor's first CO epoch and the lead
    ``co_epoch - spectral_flag_epoch`` in epochs (> 0: the spectral flag came first; None unless both fired)."""
    first = lambda key: next((m[key] for m in history if m.get(key) is not None), None)  # noqa: E731
    flag, co = first("spectral_flag_epoch"), first("co_epoch")
    return {"spectral_flag_epoch": flag, "co_epoch": co,
            "lead_epochs": co - flag if flag is not None and co is not None else None}
