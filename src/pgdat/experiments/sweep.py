"""``pgdat sweep``: a grid of config overrides times seeds, one run directory each, resumable as a whole.

A sweep into ``DIR`` plans every run first (each config built and validated before anything trains), records the
plan in ``DIR/sweep.json`` and trains each run into ``DIR/<point>/seed<k>``:

- a finished run (``final.json`` present, saved config equal to the planned one) is skipped, untouched;
- an unfinished run (``last.pt`` with the planned config) is resumed; a run that never finished an epoch restarts;
- a run directory holding another config is refused, naming it and the keys that differ.

Seeds are *offsets* added to the configured ``train.seed``, as for ``pgdat repro --seeds`` (with the default
``train.seed: 0``, offsets are the seed values). ``DIR`` is locked for the sweep's life, so two sweeps cannot share
it. Runs go one after another in this process, or with ``workers > 1`` in that many ``pgdat train`` child processes
(one GPU each, round-robin, when several are visible). The per-point statistics over seeds are written by
:mod:`pgdat.experiments.sweep_summary`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgdat.checkpoint import atomic_write_bytes
from pgdat.config import Config, config_from_dict, config_to_dict, load_config
from pgdat.config.loader import load_yaml_file
from pgdat.errors import PgdatError
from pgdat.experiments.seeds import MAX_SEEDS, seed_offsets, seed_override
from pgdat.report.seeds import SWEEP_FILE
from pgdat.rundir import check_fresh_start, run_contents

SAFE = re.compile(r"[^A-Za-z0-9_.-]")
SEED_KEY = "train.seed"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its grid point (folder name and ``key -> value`` text), its seed offset, the
    ``--set`` overrides that build its config (the sweep's, the point's, then the seed's) and that config."""

    point: str
    values: tuple[tuple[str, str], ...]
    seed: int
    overrides: tuple[str, ...]
    config: Config

    @property
    def rel_dir(self) -> str:
        return f"{self.point}/seed{self.seed}"


@dataclass(frozen=True)
class SweepPlan:
    """Every run of a sweep into ``out``: the recipe (None: the embedded default), the common overrides, the grid
    (``key -> [value text]``) and the seed offsets."""

    out: Path
    recipe: str | None
    sets: tuple[str, ...]
    grid: dict[str, list[str]]
    seeds: tuple[int, ...]
    runs: tuple[PlannedRun, ...]

    def to_json(self) -> dict[str, Any]:
        """What ``sweep.json`` holds: the request and, per run, its folder, overrides and resolved config."""
        return {"recipe": self.recipe, "sets": list(self.sets), "grid": self.grid, "seeds": list(self.seeds),
                "runs": [{"dir": r.rel_dir, "point": r.point, "values": dict(r.values), "seed": r.seed,
                          "train_seed": r.config.train.seed, "overrides": list(r.overrides),
                          "config": config_to_dict(r.config)} for r in self.runs]}


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: one whole number N is a count (offsets 0..N-1, as ``pgdat repro --seeds N``); a comma list
    (``0,1,2`` or ``5,``) is the offsets themselves. Offsets are >= 0 and distinct."""
    raw = str(text).strip()
    parts = [p.strip() for p in raw.split(",")]
    if "," in raw:
        parts = [p for p in parts if p] if raw.endswith(",") else parts
    if not parts or not all(p.isdigit() for p in parts):
        raise PgdatError(f"--seeds must be a count (e.g. --seeds 3) or a comma list of seed offsets >= 0 (e.g. "
                         f"--seeds 0,1,2) (got {text!r})")
    values = [int(p) for p in parts]
    if "," not in raw:
        return seed_offsets(values[0])
    if len(set(values)) != len(values) or len(values) > MAX_SEEDS:
        raise PgdatError(f"--seeds {text}: give at most {MAX_SEEDS} distinct offsets, e.g. --seeds 0,1,2")
    return values


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``--grid key=v1,v2`` items -> ``{key: [value text]}``; each value is later read like a ``--set`` value
    (``8/255`` is a number). Keys must be distinct; ``train.seed`` is set by ``--seeds``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        values = [v.strip() for v in raw.split(",")]
        if not sep or not key:
            raise PgdatError(f"--grid {item!r} must look like section.key=value1,value2, e.g. --grid "
                             "attack.eps=4/255,8/255")
        if not all(values):
            raise PgdatError(f"--grid {item!r}: every value must be non-empty (comma-separated), e.g. --grid "
                             f"{key}=1,6")
        if key == SEED_KEY:
            raise PgdatError(f"--grid {item!r}: seeds are set by --seeds (offsets added to train.seed), e.g. "
                             "--seeds 0,1,2; set the base seed with --set train.seed=N")
        if key in grid:
            raise PgdatError(f"--grid key '{key}' is given twice: list all its values once, e.g. --grid "
                             f"{key}={','.join(grid[key] + values)}")
        if len(set(values)) != len(values):
            raise PgdatError(f"--grid {item!r} repeats a value: each grid point must be a different run")
        grid[key] = values
    return grid


def point_names(points: list[dict[str, str]]) -> list[str]:
    """A folder name per grid point: ``beta1_eps8-255`` (last key part + value); the full keys when last parts
    repeat; ``point<i>`` when names would still collide or be unsafe. No grid: ``base``."""
    def name(p: dict[str, str], full: bool) -> str:
        parts = [f"{(k.replace('.', '-') if full else k.rsplit('.', 1)[-1])}{SAFE.sub('_', v.replace('/', '-'))}"
                 for k, v in p.items()]
        return "_".join(parts) or "base"

    shorts = [k.rsplit(".", 1)[-1] for k in (points[0] if points else {})]
    names = [name(p, full=len(set(shorts)) < len(shorts)) for p in points]
    if len(set(names)) < len(names) or any(len(n) > 100 or n in ("", ".", "..") for n in names):
        names = [f"point{i}" for i in range(len(points))]
    return names


def plan_sweep(out: str | Path, recipe: str | None, sets: Sequence[str], grid: dict[str, list[str]],
               seeds: Sequence[int]) -> SweepPlan:
    """Build and validate every run's config (a bad key or value fails here, before anything is written)."""
    from pgdat.experiments.seeds import grid_points
    from pgdat.training.validate import validate_config

    base = load_config(recipe or "default", list(sets))
    points = grid_points(grid) if grid else [{}]
    runs = []
    for name, point in zip(point_names(points), points, strict=True):
        for s in seeds:
            overrides = (*sets, *(f"{k}={v}" for k, v in point.items()), seed_override(base.train.seed, s))
            try:
                cfg = load_config(recipe or "default", list(overrides))
                validate_config(cfg)
            except PgdatError as e:
                where = " ".join(f"{k}={v}" for k, v in point.items()) or "(no grid)"
                raise PgdatError(f"sweep run {where}, seed offset {s}: {e}") from None
            runs.append(PlannedRun(name, tuple(point.items()), s, overrides, cfg))
    check_distinct(runs)
    return SweepPlan(Path(out), recipe, tuple(sets), dict(grid), tuple(seeds), tuple(runs))


def check_distinct(runs: list[PlannedRun]) -> None:
    """Two grid points whose values read the same (``0.1`` and ``0.10``) would train one experiment twice and
    count it as two: refused, naming both."""
    seen: dict[str, PlannedRun] = {}
    for run in runs:
        other = seen.setdefault(json.dumps(config_to_dict(run.config), sort_keys=True), run)
        if other is not run:
            raise PgdatError(f"grid points {other.point} and {run.point} give the same config (their values read "
                             "the same, e.g. 0.1 and 0.10): list each value once")


def config_differences(planned: Config, saved: dict[str, Any]) -> list[str]:
    """Dotted keys whose saved value differs from the planned one (those a resume may change aside). A planned
    ``data.extra`` matches the saved one its run resolved (the saved one adds sha256 and n_images)."""
    from pgdat.training.trainer import config_changes

    want, have = config_to_dict(planned), config_to_dict(config_from_dict(saved))
    extra_w, extra_h = want["data"].get("extra") or {}, have["data"].get("extra") or {}
    if extra_w and extra_h and all(str(extra_h.get(k)) == str(v) or k == "path" and Path(str(v)).expanduser()
                                   .resolve() == Path(str(extra_h.get(k))).resolve() for k, v in extra_w.items()):
        want["data"]["extra"] = have["data"]["extra"]
    return config_changes(have, want)


def run_state(run: PlannedRun, run_dir: Path) -> str:
    """``finished``, ``resume`` or ``fresh`` for ``run`` in ``run_dir``; a PgdatError when the directory holds
    another config or files that are not a run's (nothing is changed then)."""
    contents = run_contents(run_dir)
    if not contents.results and not contents.others:
        return "fresh"  # new, empty, or a run that never finished an epoch: nothing trained is lost
    if not (run_dir / "config.yaml").is_file():
        check_fresh_start(run_dir, overwrite=False)  # raises: results without a config, or foreign files
    saved = load_yaml_file(run_dir / "config.yaml", "the run's config")
    if not isinstance(saved, dict):
        raise PgdatError(f"{run_dir / 'config.yaml'} is not a mapping of config sections: move {run_dir} away "
                         "and rerun the sweep")
    changed = config_differences(run.config, saved)
    if changed:
        raise PgdatError(f"{run_dir} holds a run with another config than this sweep plans ({', '.join(changed)} "
                         "differ): move it away, or sweep into another --out")
    if (run_dir / "final.json").is_file():
        return "finished"
    if (run_dir / "last.pt").is_file():
        return "resume"
    check_fresh_start(run_dir, overwrite=False)  # results but no last.pt (e.g. only best.pt): refuse, naming them
    return "fresh"


def check_sweep_dir(plan: SweepPlan, replan: bool) -> bool:
    """Whether ``plan.out`` holds another sweep's plan that ``replan`` allows to replace: it must be new, empty, or
    hold this same sweep; another plan there is refused unless ``replan``. Call with ``plan.out`` locked."""
    path = plan.out / SWEEP_FILE
    if not path.is_file():
        from pgdat.rundir import LOCK_NAME

        others = sorted(p.name for p in plan.out.iterdir() if p.name != LOCK_NAME) if plan.out.is_dir() else []
        if others:
            raise PgdatError(f"{plan.out} is not empty and holds no {SWEEP_FILE} ({', '.join(others[:5])}): a sweep "
                             "writes into a new or empty directory, or continues its own; pick another --out")
        return False
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PgdatError(f"cannot read {path} ({e}): move it away to start this sweep afresh") from None
    if old == plan.to_json():
        return False
    if not replan:
        raise PgdatError(f"{plan.out} holds another sweep (its plan {path} differs from this one: grid, seeds, "
                         "recipe or --set): rerun it with the same arguments to continue it, sweep into another "
                         "--out, or add --replan to replace the plan (finished runs of the points kept are reused)")
    return True


def write_plan(plan: SweepPlan, replace: bool = False) -> Path:
    """``plan.out/sweep.json``, written atomically; ``replace``: the old plan is kept as ``sweep.replaced-N.json``."""
    if replace:
        k = 1
        while (plan.out / f"sweep.replaced-{k}.json").exists():
            k += 1
        (plan.out / SWEEP_FILE).rename(plan.out / f"sweep.replaced-{k}.json")
    text = json.dumps(plan.to_json(), indent=1)
    return atomic_write_bytes(plan.out / SWEEP_FILE, lambda f: f.write(text.encode()))
