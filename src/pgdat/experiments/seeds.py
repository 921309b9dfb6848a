"""Seeds and sweeps: expand a grid of config overrides times seeds into named runs, and run a function per seed.

Used by ``pgdat repro NAME --seeds N``; written so that a ``pgdat sweep`` can reuse it (:func:`grid_points` and
:func:`sweep_points` know nothing about experiments).

A seed here is an *offset* added to a run's configured ``train.seed`` (a recipe that fixes seed 42 runs 42, 43, ...),
so offset 0 is the run as configured and an earlier single-seed run is reused unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pgdat.errors import PgdatError

R = TypeVar("R")
MAX_SEEDS = 100


def seed_offsets(n: int, option: str = "--seeds") -> list[int]:
    """Offsets ``0 .. n-1`` for ``n`` seeds (1 <= n <= 100); a bad count fails naming ``option``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEEDS:
        raise PgdatError(f"{option} must be a whole number of seeds from 1 to {MAX_SEEDS} (got {n!r}), e.g. "
                         f"{option} 3")
    return list(range(n))


def seed_override(base_seed: int, offset: int) -> str:
    """The override that runs seed ``offset`` of a run configured with ``train.seed=base_seed``."""
    return f"train.seed={base_seed + offset}"


def seed_dir(out: Path, offset: int) -> Path:
    """Where seed ``offset``'s runs of a multi-seed command go: ``out/seed{offset}``."""
    return out / f"seed{offset}"


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its dotted overrides (``key=value``), its seed offset and a folder name."""

    overrides: tuple[str, ...]
    seed: int
    name: str


def grid_points(grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of ``{dotted.key: [values]}`` as dicts, in the grid's key order."""
    for key, values in grid.items():
        if not values:
            raise PgdatError(f"sweep key '{key}' has no values; give at least one, e.g. {key}=[0.1, 0.2]")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def _name(point: dict[str, Any], seed: int) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}{v}" for k, v in point.items()]
    return "_".join([*parts, f"seed{seed}"]).replace("/", "-")


def sweep_points(grid: dict[str, Sequence[Any]], seeds: Sequence[int], base_seed: int = 0) -> list[SweepPoint]:
    """Every grid point times every seed offset, each with its overrides (the point's, then the seed's)."""
    return [SweepPoint(tuple(f"{k}={v}" for k, v in p.items()) + (seed_override(base_seed, s),), s, _name(p, s))
            for p in grid_points(grid) for s in seeds]


def run_seeds(fn: Callable[[int, Path], R], seeds: Sequence[int], out: Path) -> dict[int, R]:
    """``fn(offset, out/seed{offset})`` for each seed offset, in order; returns offset -> result."""
    return {s: fn(s, seed_dir(out, s)) for s in seeds}
