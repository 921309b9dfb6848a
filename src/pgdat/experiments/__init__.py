"""One-command paper experiments (``pgdat repro NAME --preset cpu|paper --seeds N --out DIR``).

Each experiment is data plus one analysis: ``plan(preset, seed) -> list[RunSpec]`` declares its training runs
(:mod:`pgdat.experiments.plan`), and ``analyse(out, runs, preset=, seed=) -> rows`` (registered with
:func:`pgdat.experiments.base.register_experiment` next to its definition, with the paper's claims and a
``metrics(rows)`` function) turns the trained runs into one seed's rows, plots and summary
(:func:`pgdat.experiments.summary.write_summary`). :mod:`pgdat.experiments.runner` trains the plan per seed, analyses
it and writes the claims summary above the seeds.

The import list below is the one place that names the experiment modules: add a new experiment here.
"""

from __future__ import annotations

from pgdat.experiments import (  # noqa: F401  (each registers its experiment)
    co_features,
    criticality,
    deat,
    induced,
    memorization,
    ntk,
    reat,
    robust_overfitting,
)
from pgdat.experiments.base import EXPERIMENTS, Experiment, register_experiment
from pgdat.experiments.plan import RunSpec, TrainedRun
from pgdat.registry import Registry


def load_experiments() -> Registry[Experiment]:
    """The experiment registry, filled by the import list above (for callers written when experiment modules were
    imported on demand)."""
    return EXPERIMENTS


__all__ = ["EXPERIMENTS", "Experiment", "RunSpec", "TrainedRun", "load_experiments", "register_experiment"]
