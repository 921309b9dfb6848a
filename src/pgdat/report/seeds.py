"""Seeds aggregated in reports: runs whose configs differ only by ``train.seed`` form one group, shown as
``mean ± std (n)`` in tables and as a mean curve with a ±1 std band in plots.

A sweep directory (one holding ``sweep.json``, see :mod:`pgdat.experiments.sweep`) stands for its run
directories. A group of one run is reported exactly as before (:func:`pgdat.report.summary_row`).
"""

from __future__ import annotations

import copy
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgdat.errors import PgdatError
from pgdat.report.runs import Run, summary_row

SWEEP_FILE = "sweep.json"
# config keys that do not make a different experiment: the seed (what a group spans), the run's name, and those a
# resume may change (pgdat.training.trainer.RESUMABLE_CHANGES: progress bars, checkpoint cadence, data location)
IGNORED = ("train.seed", "name")
STAT_KEYS = ("best_epoch", "best_robust", "last_robust", "best_clean", "last_clean", "wall_s")


@dataclass(frozen=True)
class SeedStat:
    """Mean and sample standard deviation (ddof 1; None for one value) of a quantity over ``n`` seeds."""

    mean: float
    std: float | None
    n: int
    values: tuple[float, ...] = ()

    def text(self, scale: float = 1.0, spec: str = ".4f", unit: str = "") -> str:
        """``0.4520 ± 0.0110 (3)``; ``scale=100, spec=".2f", unit="%"`` gives ``45.20% ± 1.10% (3)``."""
        std = "n/a" if self.std is None else f"{scale * self.std:{spec}}{unit}"
        return f"{scale * self.mean:{spec}}{unit} ± {std} ({self.n})"

    def __str__(self) -> str:
        return self.text()

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)}


def seed_stat(values: list[float]) -> SeedStat:
    """:class:`SeedStat` of ``values`` (one per seed, at least one)."""
    if not values:
        raise PgdatError("no value to aggregate over seeds: at least one finished run is needed")
    std = statistics.stdev(values) if len(values) > 1 else None
    return SeedStat(statistics.fmean(values), std, len(values), tuple(values))


def sweep_run_dirs(path: Path) -> list[Path] | None:
    """The run directories of the sweep in ``path`` that have started (hold ``metrics.jsonl``), in plan order; None
    when ``path`` is not a sweep directory."""
    plan = path / SWEEP_FILE
    if not plan.is_file() or (path / "metrics.jsonl").is_file():
        return None
    try:
        runs = json.loads(plan.read_text())["runs"]
        dirs = [path / str(r["dir"]) for r in runs]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PgdatError(f"{plan} is not a pgdat sweep plan ({e}); pass the run directories instead") from None
    started = [d for d in dirs if (d / "metrics.jsonl").is_file()]
    if not started:
        raise PgdatError(f"the sweep in {path} has no run with metrics yet: run or continue it with pgdat sweep")
    return started


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Each path, or the run directories of a sweep directory in its place."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sweep_run_dirs(p) or [p]
    return out


def _experiment_key(run: Run) -> str:
    from pgdat.training.trainer import RESUMABLE_CHANGES

    cfg = copy.deepcopy(run.config)
    for path in (p.split(".") for p in (*IGNORED, *sorted(RESUMABLE_CHANGES))):
        node = cfg
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return json.dumps(cfg, sort_keys=True, default=str)


@dataclass
class SeedGroup:
    """Runs of one experiment that differ only by seed, in the order given."""

    runs: list[Run]

    @property
    def label(self) -> str:
        """The sweep point's folder for ``POINT/seedK`` runs; else the first run's name and the count."""
        parents = {r.path.resolve().parent for r in self.runs}
        if len(self.runs) > 1 and len(parents) == 1 and all(r.name.startswith("seed") for r in self.runs):
            return parents.pop().name
        return self.runs[0].name + (f" (+{len(self.runs) - 1} seeds)" if len(self.runs) > 1 else "")


def seed_groups(runs: list[Run]) -> list[SeedGroup]:
    """Group ``runs`` by their config without ``train.seed``, ``name`` and the resumable keys (groups in order of
    first appearance)."""
    groups: dict[str, SeedGroup] = {}
    for run in runs:
        groups.setdefault(_experiment_key(run), SeedGroup([])).runs.append(run)
    return list(groups.values())


def group_row(group: SeedGroup) -> dict[str, Any]:
    """The comparison row of a group: :func:`summary_row`'s columns with :class:`SeedStat` for the numbers, plus
    ``seeds`` (how many) and ``train_seeds``; a group of one run is its :func:`summary_row` unchanged."""
    rows = [summary_row(r) for r in group.runs]
    if len(rows) == 1:
        return rows[0]
    out: dict[str, Any] = {"run": group.label, "seeds": len(rows),
                           "train_seeds": ",".join(str(r.config.get("train", {}).get("seed")) for r in group.runs)}
    for key in rows[0]:
        if key == "run":
            continue
        values = [r[key] for r in rows]
        if key in STAT_KEYS:
            nums = [float(v) for v in values if v is not None]
            out[key] = seed_stat(nums) if nums else None
        elif key == "health":  # which seeds the health check flagged (the flags are in each run's section)
            bad = [str(r.config.get("train", {}).get("seed")) for r, v in zip(group.runs, values, strict=True)
                   if v != "ok"]
            out[key] = f"{len(bad)} of {len(rows)} flagged (train.seed {', '.join(bad)})" if bad else "ok"
        elif key == "epochs" and len(set(values)) > 1:
            out[key] = f"{min(values)}-{max(values)}"
        else:
            out[key] = values[0] if len(set(map(str, values))) == 1 else "; ".join(dict.fromkeys(map(str, values)))
    return out


def table_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per seed group (:func:`group_row`); with no group of several runs, exactly the runs' rows."""
    return [group_row(g) for g in seed_groups(runs)]


def json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with each :class:`SeedStat` as ``{mean, std, n, values}`` (for JSON output)."""
    return [{k: v.to_json() if isinstance(v, SeedStat) else v for k, v in r.items()} for r in rows]


def text_rows(rows: list[dict[str, Any]], percent: bool) -> list[dict[str, Any]]:
    """``rows`` with each :class:`SeedStat` as text; ``percent``: accuracy columns as ``45.20% ± 1.10% (3)``."""
    def fmt(key: str, v: SeedStat) -> str:
        accuracy = any(w in key for w in ("robust", "clean"))
        if percent and accuracy:
            return v.text(100, ".2f", "%")
        return v.text() if accuracy else v.text(spec=".4g")

    return [{k: fmt(k, v) if isinstance(v, SeedStat) else v for k, v in r.items()} for r in rows]


def curve_stats(group: SeedGroup, key: str) -> tuple[list[int], list[float], list[float]]:
    """(epochs, mean %, std %) of the per-epoch metric ``key`` over the group's runs, at the epochs every run
    evaluated (std 0 for a group of one run)."""
    per_run = [{m["epoch"]: 100 * m[key] for m in r.history if m.get(key) is not None} for r in group.runs]
    epochs = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    means, stds = [], []
    for e in epochs:
        stat = seed_stat([p[e] for p in per_run])
        means.append(stat.mean)
        stds.append(stat.std or 0.0)
    return epochs, means, stds
