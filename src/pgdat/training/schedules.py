"""Learning-rate schedules as pure functions of training progress, recomputed every iteration.

``lr_at(cfg, t, total)``: t and total in (fractional) epochs, so a run resumed at any step gets the same rate.

Epoch convention (one for the whole library, docs/fidelity.md): epochs are **1-based**, epoch E is the E-th pass over
the training data, E = 1 .. train.epochs, as the TRADES, MART, TRADES-AWP and memorization-AT scripts count them
(``for epoch in range(1, epochs + 1)``). The trainer calls ``lr_at`` with t = the epochs completed *after* the step
(Rice et al.'s ``lr_schedule(epoch + (i + 1) / len(batches))``, 0-based ``epoch``), so a step of epoch E has
E - 1 < t <= E and :func:`step_epoch` recovers E. ``multistep`` milestone M: every step of epochs E >= M runs at the
decayed rate, which is what TRADES's ``if epoch >= 75: lr *= 0.1`` does, so "decay at epoch 75" is written 75. A
script using PyTorch's ``MultiStepLR(milestones=[m])`` stepped once per epoch decays from epoch m + 1: write m + 1.
``piecewise`` fractions act per step on t (Rice et al. and AT-AWP: decayed once t >= f * total).
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


def step_epoch(t: float) -> int:
    """The 1-based epoch E of the optimizer step after which ``t`` epochs are done (E - 1 < t <= E; 1 for t <= 0).
    The 1e-9 guards a float sum like 74 + 383/383 that lands a hair above its integer."""
    return max(1, math.ceil(t - 1e-9))


@SCHEDULES.register("multistep")
def multistep(cfg: OptimConfig, t: float, total: float) -> float:
    """x gamma at each milestone M, in 1-based epochs: the steps of epochs E >= M are decayed (TRADES and MART:
    75, 90, 100, i.e. their ``if epoch >= 75``)."""
    return cfg.gamma ** bisect.bisect_right(sorted(cfg.milestones), step_epoch(t))


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
