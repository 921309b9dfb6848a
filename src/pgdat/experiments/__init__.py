"""One-command paper experiments (``pgdat repro NAME --preset cpu|paper --seeds N --out DIR``).

Each experiment module registers, with :func:`register_experiment`, its ``run(preset, out, seed=0) -> list[dict]``
together with its paper's claims (:class:`pgdat.experiments.claims.Claim`), a ``metrics(rows) -> {name: value}``
function that turns one seed's rows into the values the claims compare, and how many seeds each preset runs by
default. One seed's rows are written by :func:`write_summary` as ``summary.json`` and ``summary.md`` (plots are the
experiment's own); :mod:`pgdat.experiments.runner` runs the seeds and writes the claims summary above them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgdat.checkpoint import atomic_write_bytes
from pgdat.experiments.claims import Claim, check_claims
from pgdat.registry import Registry

RunFn = Callable[..., list[dict[str, Any]]]  # run(preset, out, seed=0) -> rows
MetricsFn = Callable[[list[dict[str, Any]]], dict[str, float]]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its run function, its paper's claims, the per-seed metrics the claims compare and
    the default seed count per preset (the cpu preset runs 3 where they fit in 30 minutes on 2 cores)."""

    name: str
    run: RunFn
    claims: tuple[Claim, ...]
    metrics: MetricsFn
    default_seeds: dict[str, int] = field(default_factory=lambda: {"cpu": 1, "paper": 1})  # its keys: the presets
    title: str = ""


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def register_experiment(name: str, *, claims: tuple[Claim, ...], metrics: MetricsFn, title: str,
                        default_seeds: dict[str, int] | None = None) -> Callable[[RunFn], RunFn]:
    """Decorator: register ``run`` as experiment ``name`` with its claims; returns ``run`` unchanged."""
    check_claims(claims, name)

    def deco(run: RunFn) -> RunFn:
        seeds = {"cpu": 1, "paper": 1, **(default_seeds or {})}
        EXPERIMENTS.register(name)(Experiment(name, run, claims, metrics, seeds, title))
        return run

    return deco


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def write_summary(out: Path, rows: list[dict[str, Any]], *, title: str, meta: dict[str, Any] | None = None,
                  runs: list[Path] | None = None) -> None:
    """``out/summary.json`` ({"title", "meta", "rows"}), ``out/summary.md`` (a Markdown table of the rows) and, when
    the experiment trained ``runs``, ``out/report.html`` (the same report as ``pgdat report``)."""
    out.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"title": title, "meta": meta or {}, "rows": rows}, indent=2)
    atomic_write_bytes(out / "summary.json", lambda f: f.write(payload.encode()))
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"# {title}", ""]
    if meta:
        lines += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(out / "summary.md", lambda f: f.write(text.encode()))
    if runs:
        from pgdat.report import write_report

        write_report(runs, out / "report.html", title=title)


def load_experiments() -> None:
    """Import the experiment modules so they register themselves."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in NOT_EXPERIMENTS:
            importlib.import_module(f"{__name__}.{mod.name}")


# helper modules of the package
NOT_EXPERIMENTS = ("claims", "common", "runner", "seeds", "sweep", "sweep_run", "sweep_summary")
