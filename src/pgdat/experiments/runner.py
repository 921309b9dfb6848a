"""``pgdat repro NAME --seeds N``: run an experiment once per seed, test its claims over the seeds, and write the
summary that starts with one line per claim (``summary.md``, ``summary.json``, ``report.html`` and the console).

Layout: ``out/seed{S}/`` holds seed offset S's runs and that seed's own summary; ``out/summary.*`` the claims.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgdat.checkpoint import atomic_write_bytes
from pgdat.experiments import EXPERIMENTS, Experiment
from pgdat.experiments.claims import MULTI_SEED_RULE, SINGLE_SEED_RULE, ClaimResult, decimals, evaluate
from pgdat.experiments.seeds import seed_dir, seed_offsets


@dataclass(frozen=True)
class ReproResult:
    """What a multi-seed repro produced: the claims' results, each seed's metrics and rows, flagged runs, seconds."""

    experiment: Experiment
    preset: str
    seeds: list[int]
    results: list[ClaimResult]
    metrics: list[dict[str, float]]  # one per seed, in ``seeds`` order
    rows: list[dict[str, Any]]  # every seed's rows, each with its ``seed``
    health: list[dict[str, Any]]  # {"run": folder, "flags": [...]} for each run whose health check flagged it
    wall_seconds: float
    planned: int = 0  # seeds asked for (more than len(seeds) while the command is still running)

    def lines(self) -> list[str]:
        """The summary's head: one line per claim, then the seed count, the verdict rule and any flagged runs."""
        n = len(self.seeds)
        out = [r.line() for r in self.results]
        done = f"{n}" if self.planned <= n else f"{n} of {self.planned} asked for (the command has not finished)"
        out.append(f"seeds: {done} (offsets {', '.join(map(str, self.seeds))} added to each run's train.seed); "
                   f"verdict rule: {SINGLE_SEED_RULE if n == 1 else MULTI_SEED_RULE}")
        out += [f"HEALTH: {h['run']}: {'; '.join(h['flags'])}" for h in self.health]
        return out


def run_runs(out: Path) -> list[Path]:
    """Every trained run folder under ``out`` (a folder with ``final.json``), sorted."""
    return sorted(p.parent for p in out.rglob("final.json"))


def health_flags(out: Path) -> list[dict[str, Any]]:
    """The runs under ``out`` whose ``final.json`` carries health flags (see :mod:`pgdat.training.health`)."""
    from pgdat.training.health import recorded_flags

    flagged = []
    for run in run_runs(out):
        final = json.loads((run / "final.json").read_text())
        log = run / "metrics.jsonl"  # read only when final.json has no health block (written before the check)
        lines = log.read_text().splitlines()[1:] if "health" not in final and log.is_file() else []
        flags = recorded_flags(final, [json.loads(s) for s in lines])
        if flags:
            flagged.append({"run": str(run.relative_to(out)), "flags": flags})
    return flagged


def run_experiment(name: str, preset: str, out: Path, seeds: int | None = None) -> ReproResult:
    """Run experiment ``name`` at ``preset`` for ``seeds`` seeds (None: the preset's default) into ``out`` and write
    the claims summary; returns it."""
    exp = EXPERIMENTS.get(name)
    exp.check_preset(preset)
    offsets = seed_offsets(exp.default_seeds[preset] if seeds is None else seeds)
    t0 = time.perf_counter()
    rows, metrics = [], []
    for i, s in enumerate(offsets):
        seed_rows = exp.run(preset, seed_dir(out, s), seed=s)
        rows += [{"seed": s, **r} for r in seed_rows]
        metrics.append(exp.metrics(seed_rows))
        result = ReproResult(exp, preset, offsets[:i + 1], [evaluate(c, metrics) for c in exp.claims], metrics,
                             rows, health_flags(out), time.perf_counter() - t0, len(offsets))
        write_claims_summary(out, result)  # after every seed: a stopped command leaves the seeds it finished
        if i + 1 < len(offsets):
            print("\n".join(result.lines()), flush=True)
    return result


def _metrics_table(result: ReproResult) -> list[str]:
    keys = list(dict.fromkeys(k for m in result.metrics for k in m))
    lines = ["| metric | " + " | ".join(f"seed {s}" for s in result.seeds) + " |",
             "|---|" + "---|" * len(result.seeds)]
    for k in keys:
        vals = [m.get(k) for m in result.metrics]
        lines.append(f"| {k} | " + " | ".join("" if v is None else f"{v:.{decimals(abs(v))}f}" for v in vals) + " |")
    return lines


def _claims_table(result: ReproResult) -> list[str]:
    lines = ["| claim | verdict | source | paper's scale |", "|---|---|---|---|"]
    for r in result.results:
        c = r.claim
        lines.append(f"| {c.name} | {r.verdict} | {c.source} | {c.paper_scale} |")
    return lines


def write_claims_summary(out: Path, result: ReproResult) -> None:
    """``out/summary.json``, ``out/summary.md`` and ``out/report.html``, each starting with the claim lines."""
    exp = result.experiment
    title = f"{exp.title or exp.name}: {result.preset} preset, {len(result.seeds)} seed(s)"
    payload = {"title": title, "experiment": exp.name, "preset": result.preset, "seeds": result.seeds,
               "n_seeds": len(result.seeds), "wall_seconds": round(result.wall_seconds, 1),
               "claims": [r.to_dict() for r in result.results], "health": result.health,
               "metrics_per_seed": result.metrics, "rows": result.rows}
    text = json.dumps(payload, indent=2)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "summary.json", lambda f: f.write(text.encode()))
    md = [f"# {title}", "", *[f"- {line}" for line in result.lines()], "",
          f"wall time of this command: {result.wall_seconds:.0f} s (runs found finished were reused, not retrained)",
          "", "## Claims", "", *_claims_table(result), "", "## Per-seed metrics", "", *_metrics_table(result), "",
          "Each seed's rows, plots and report: " + ", ".join(f"`seed{s}/summary.md`" for s in result.seeds), ""]
    atomic_write_bytes(out / "summary.md", lambda f: f.write("\n".join(md).encode()))
    from pgdat.report.runs import is_run_dir

    runs = [r for r in run_runs(out) if is_run_dir(r)]  # not the internal trainings an analysis keeps (students)
    if runs:
        from pgdat.report import write_report

        write_report(runs, out / "report.html", title=title, claims=result.lines())
