"""The experiment registry: each paper experiment is a plan of training runs plus one analysis, with its claims.

``@register_experiment(NAME, plan=..., claims=..., metrics=..., title=...)`` on the experiment's ``analyse`` function,
in the experiment's own module; the package's ``__init__`` imports every experiment module by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pgdat.errors import PgdatError
from pgdat.experiments.claims import Claim, check_claims
from pgdat.experiments.plan import RunSpec, TrainedRun, check_plan, train_plan
from pgdat.registry import Registry

PlanFn = Callable[[str, int], list[RunSpec]]  # plan(preset, seed) -> the runs to train
MetricsFn = Callable[[list[dict[str, Any]]], dict[str, float]]


class AnalyseFn(Protocol):
    """``analyse(out, runs, preset=, seed=) -> rows``: the experiment's analysis over its trained runs (in plan
    order); writes its plots and ``summary.*`` under ``out`` and returns one seed's rows."""

    def __call__(self, out: Path, runs: list[TrainedRun], *, preset: str, seed: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its plan and analysis, its paper's claims, the per-seed metrics the claims compare
    and the default seed count per preset (the cpu preset runs 3 where they fit in 30 minutes on 2 cores)."""

    name: str
    plan: PlanFn
    analyse: AnalyseFn
    claims: tuple[Claim, ...]
    metrics: MetricsFn
    default_seeds: dict[str, int] = field(default_factory=lambda: {"cpu": 1, "paper": 1})  # its keys: the presets
    title: str = ""

    def check_preset(self, preset: str) -> None:
        """Fail with a :class:`PgdatError` unless ``preset`` is one of the experiment's presets."""
        if preset not in self.default_seeds:
            raise PgdatError(f"--preset for {self.name} must be one of {', '.join(self.default_seeds)} "
                             f"(got '{preset}'), e.g. --preset {next(iter(self.default_seeds))}")

    def planned(self, preset: str, seed: int = 0) -> list[RunSpec]:
        """The checked plan of ``preset`` at seed offset ``seed`` (nothing is trained)."""
        self.check_preset(preset)
        specs = self.plan(preset, seed)
        check_plan(specs, f"experiment {self.name}, preset {preset}")
        return specs

    def run(self, preset: str, out: Path, seed: int = 0) -> list[dict[str, Any]]:
        """Train the plan of ``preset`` at seed offset ``seed`` into ``out``, then analyse it; returns the rows."""
        runs = train_plan(self.planned(preset, seed), out, f"experiment {self.name}, preset {preset}")
        return self.analyse(out, runs, preset=preset, seed=seed)


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def register_experiment(name: str, *, plan: PlanFn, claims: tuple[Claim, ...], metrics: MetricsFn, title: str,
                        default_seeds: dict[str, int] | None = None) -> Callable[[AnalyseFn], AnalyseFn]:
    """Decorator: register ``analyse`` with ``plan`` as experiment ``name``; returns ``analyse`` unchanged."""
    check_claims(claims, name)

    def deco(analyse: AnalyseFn) -> AnalyseFn:
        seeds = {"cpu": 1, "paper": 1, **(default_seeds or {})}
        EXPERIMENTS.register(name)(Experiment(name, plan, analyse, claims, metrics, seeds, title))
        return analyse

    return deco
