"""A sweep's ``summary.json`` and ``summary.md``: per grid point, over the seeds whose run finished, the mean,
the standard deviation (ddof 1) and the 95% t-interval of the best and last clean and robust test accuracy
(fractions in [0, 1], read from each run's ``final.json``), and the attacks behind the robust numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pgdat.checkpoint import atomic_write_bytes
from pgdat.experiments.claims import interval
from pgdat.experiments.sweep import SweepPlan
from pgdat.report import load_run, summary_row
from pgdat.report.seeds import seed_stat

METRICS = ("best_robust", "last_robust", "best_clean", "last_clean")
STATS_RULE = ("mean ± std over seeds (std with ddof 1), [95% t-interval of the mean]; accuracies on the test "
              "images of each run's final evaluation, robust accuracy by the attacks named")


def metric_stats(values: list[float]) -> dict[str, Any]:
    """``{n, mean, std, ci95: [lo, hi], values}`` of one metric over seeds (std and ci95 None for one seed)."""
    stat, iv = seed_stat(values), interval(values)
    ci = None if iv.half is None else [iv.mean - iv.half, iv.mean + iv.half]
    return {"n": stat.n, "mean": stat.mean, "std": stat.std, "ci95": ci, "values": list(values)}


def point_summary(plan: SweepPlan, point: str) -> dict[str, Any]:
    """One grid point's entry: its values, the seeds planned and finished, the metrics' statistics."""
    runs = [r for r in plan.runs if r.point == point]
    finished = [r for r in runs if (plan.out / r.rel_dir / "final.json").is_file()]
    loaded = [load_run(plan.out / r.rel_dir) for r in finished]
    rows = [summary_row(run) for run in loaded]
    entry: dict[str, Any] = {
        "point": point, "values": dict(runs[0].values), "seeds": [r.seed for r in runs],
        "finished_seeds": [r.seed for r in finished], "train_seeds": [r.config.train.seed for r in finished],
        "runs": [r.rel_dir for r in finished],
        "robust_accuracy_by": sorted({str(row["final_attacks"]) for row in rows}),
        "n_test": sorted({int(run.final.get("n") or 0) for run in loaded})}
    for key in METRICS:
        values = [row[key] for row in rows if row[key] is not None]
        entry[key] = metric_stats(values) if values else None
    return entry


def _cell(stats: dict[str, Any] | None) -> str:
    """``45.20 ± 1.10 [42.47, 47.93]`` in percent; one seed: the value alone."""
    if stats is None:
        return "-"
    if stats["std"] is None:
        return f"{100 * stats['mean']:.2f} (1 seed)"
    lo, hi = stats["ci95"]
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]"


def summary_markdown(summary: dict[str, Any]) -> str:
    """The Markdown table of a sweep summary: one row per grid point."""
    keys = list(summary["grid"])
    head = ["point", *keys, "seeds", *(f"{m.replace('_', ' ')} %" for m in METRICS), "robust by"]
    lines = [f"# sweep {summary['dir']}", "", f"- {STATS_RULE}", f"- recipe: {summary['recipe'] or 'default'}; "
             f"--set: {' '.join(summary['sets']) or '(none)'}; seed offsets: {summary['seeds']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in summary["points"]:
        seeds = f"{len(p['finished_seeds'])}/{len(p['seeds'])}"
        cells = [p["point"], *(p["values"][k] for k in keys), seeds, *(_cell(p[m]) for m in METRICS),
                 "; ".join(p["robust_accuracy_by"]) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_sweep_summary(plan: SweepPlan) -> Path:
    """``plan.out/summary.json`` and ``summary.md`` (atomically) from the runs finished so far; returns the json."""
    points = list(dict.fromkeys(r.point for r in plan.runs))
    summary = {"dir": str(plan.out), "rule": STATS_RULE, "recipe": plan.recipe, "sets": list(plan.sets),
               "grid": plan.grid, "seeds": list(plan.seeds), "units": "fraction of test images in [0, 1]",
               "points": [point_summary(plan, p) for p in points]}
    text = json.dumps(summary, indent=2)
    md = summary_markdown(summary)
    atomic_write_bytes(plan.out / "summary.md", lambda f: f.write(md.encode()))
    return atomic_write_bytes(plan.out / "summary.json", lambda f: f.write(text.encode()))
