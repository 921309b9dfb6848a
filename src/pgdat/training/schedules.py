"""Learning-rate schedules as pure functions of training progress, recomputed every iteration.

``lr_at(cfg, t, total)``: t and total in (fractional) epochs, so a run resumed at any step gets the same rate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

from pgdat.config.schema import OptimConfig
from pgdat.registry import Registry

Schedule = Callable[[OptimConfig, float, float], float]  # (cfg, t, total) -> multiplier of cfg.lr
SCHEDULES: Registry[Schedule] = Registry("schedule")


@SCHEDULES.register("constant")
def constant(cfg: OptimConfig, t: float, total: float) -> float:
    return 1.0


@SCHEDULES.register("piecewise")
def piecewise(cfg: OptimConfig, t: float, total: float) -> float:
    """x gamma at each milestone given as a fraction of training (Rice et al.: 0.5 and 0.75 of 200 epochs)."""
    return cfg.gamma ** bisect.bisect_right(sorted(m * total for m in cfg.milestones), t)


@SCHEDULES.register("multistep")
def multistep(cfg: OptimConfig, t: float, total: float) -> float:
    """x gamma at each milestone given in epochs (TRADES: 75, 90, 100)."""
    return cfg.gamma ** bisect.bisect_right(sorted(cfg.milestones), t)


@SCHEDULES.register("cosine")
def cosine(cfg: OptimConfig, t: float, total: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(t / total, 1.0)))


@SCHEDULES.register("cyclic", "one_cycle")
def cyclic(cfg: OptimConfig, t: float, total: float) -> float:
    """Triangle 0 -> 1 -> 0 peaking at ``peak`` of training (Wong et al.'s fast-AT schedule)."""
    p, u = cfg.peak, min(t / total, 1.0)
    return u / p if u < p else max(0.0, (1 - u) / (1 - p))


def lr_at(cfg: OptimConfig, t: float, total: float) -> float:
    """Learning rate at progress ``t`` of ``total`` epochs, with linear warm-up over ``cfg.warmup_epochs``."""
    factor = SCHEDULES.get(cfg.schedule)(cfg, t, total)
    if cfg.warmup_epochs > 0 and t < cfg.warmup_epochs:
        factor *= t / cfg.warmup_epochs
    return cfg.lr * factor
