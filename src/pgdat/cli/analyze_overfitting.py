"""``pgdat analyze overfitting RUN [RUN ...]``: best vs last robust accuracy and the train-test gap per run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pgdat.analysis.overfitting import plot_robust_overfitting, read_history, robust_overfitting
from pgdat.cli.commands import register_analysis


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default=None, help="write robust_overfitting.json and .png here (default: first run)")


@register_analysis("overfitting", "robust overfitting: best vs last robust accuracy, train-test gap", add_arguments)
def run(args: argparse.Namespace) -> int:
    runs = {Path(r).name: read_history(Path(r)) for r in args.runs}
    out = Path(args.out) if args.out else Path(args.runs[0])
    summary = {name: robust_overfitting(h) for name, h in runs.items()}
    for name, s in summary.items():
        val = (f", val-selected epoch {s['val_selected_epoch']}: {100 * s['val_selected_robust_test']:.2f}%"
               if "val_selected_epoch" in s else "")
        print(f"{name}: best robust test {100 * s['best_robust_test']:.2f}% (epoch {s['best_epoch']}), last "
              f"{100 * s['last_robust_test']:.2f}% (epoch {s['last_epoch']}), "
              f"gap {100 * s['robust_overfitting_gap']:.2f}{val}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "robust_overfitting.json").write_text(json.dumps(summary, indent=2))
    plot_robust_overfitting(runs, out / "robust_overfitting.png")
    print(f"wrote {out / 'robust_overfitting.json'} and {out / 'robust_overfitting.png'}")
    return 0
