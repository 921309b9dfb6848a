"""Experiments as data: the runs an experiment trains (:class:`RunSpec`), checked and trained by one runner.

An experiment's ``plan(preset, seed) -> list[RunSpec]`` declares every training run; :func:`train_plan` trains them
(a finished run with the same config is reused, a killed one resumed: :func:`pgdat.experiments.common.train_run`) and
hands the trained runs (:class:`TrainedRun`) to the experiment's analysis. :func:`spec_config` resolves a spec to the
exact :class:`pgdat.config.Config` the Trainer gets, so a preset is validated without training it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pgdat.config import Config
from pgdat.errors import PgdatError
from pgdat.experiments.common import run_config, train_run
from pgdat.training import Trainer


@dataclass(frozen=True)
class RunSpec:
    """One training run of an experiment.

    name: the run's folder under the seed's output folder (``runs/pgd_at``: POSIX, relative, unique in the plan).
    recipe, overrides: the config (``pgdat train RECIPE --set OVERRIDE ...``); ``eval.every=1`` is prepended.
    seed: offset added to the configured ``train.seed`` (0: the run as configured).
    callbacks: callbacks added to the Trainer's defaults outside the config, as ``{name: ..., **params}`` specs of
    :data:`pgdat.training.callbacks.CALLBACKS` (e.g. NTK snapshots); () keeps the defaults.
    stale: folders under the run that those callbacks write, removed with ``final.json`` before a fresh start.
    info: what the analysis reads about the run (method, eps, ...); not part of the config.
    """

    name: str
    recipe: str
    overrides: tuple[str, ...]
    seed: int = 0
    callbacks: tuple[Mapping[str, Any], ...] = ()
    stale: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedRun:
    """A planned run after training: its spec, its folder and the Trainer (``history``, ``cfg``, ``data``)."""

    spec: RunSpec
    dir: Path
    trainer: Trainer


def check_plan(specs: list[RunSpec], where: str) -> None:
    """Fail with a :class:`PgdatError` naming ``where`` unless every spec has a unique, relative, plain folder name
    (nothing is trained before this passes, so a bad plan loses no run)."""
    seen: set[str] = set()
    for spec in specs:
        path = PurePosixPath(spec.name)
        if not spec.name or path.is_absolute() or ".." in path.parts or "\\" in spec.name:
            raise PgdatError(f"{where}: run name '{spec.name}' must be a relative folder inside the output folder, "
                             f"e.g. 'runs/pgd_at'")
        if spec.name in seen:
            raise PgdatError(f"{where}: two runs share the folder '{spec.name}'; give each run its own name, e.g. "
                             f"'{spec.name}_2'")
        seen.add(spec.name)


def spec_config(spec: RunSpec) -> Config:
    """The resolved config the Trainer gets for ``spec``."""
    return run_config(spec.recipe, spec.overrides, spec.seed)


def spec_callbacks(spec: RunSpec) -> list[Any] | None:
    """The Trainer's ``callbacks`` for ``spec``: None (its defaults) unless the spec adds callbacks, else the
    defaults followed by them."""
    if not spec.callbacks:
        return None
    from pgdat.training.callback_list import build_callbacks
    from pgdat.training.callbacks import ConsoleLogger, CurvePlotter, MetricsLogger

    return [MetricsLogger(), CurvePlotter(), ConsoleLogger(), *build_callbacks([dict(c) for c in spec.callbacks])]


def train_plan(specs: list[RunSpec], out: Path, where: str) -> list[TrainedRun]:
    """Train every spec into ``out / spec.name`` in order (finished runs reused, killed ones resumed)."""
    check_plan(specs, where)
    trained = []
    for spec in specs:
        run_dir = out / spec.name
        trainer = train_run(spec.recipe, list(spec.overrides), run_dir, callbacks=spec_callbacks(spec),
                            stale=spec.stale, seed=spec.seed)
        trained.append(TrainedRun(spec, run_dir, trainer))
    return trained
