"""``pgdat analyze ntk RUN``: kernel velocity and spectrum over training from the run's NTK snapshots."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgdat.analysis.ntk import analyze_runs
from pgdat.cli.commands import register_analysis


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories trained with the NTKSnapshot callback (RUN/ntk/epoch_E.pt)")
    p.add_argument("--out", default=None, help="output directory (default: RUN/ntk_analysis for one run)")


@register_analysis("ntk",
                   "empirical NTK over training: kernel velocity and spectrum from NTKSnapshot files",
                   add_arguments)
def run(args: argparse.Namespace) -> int:
    runs = [Path(r) for r in args.runs]
    out = Path(args.out) if args.out else runs[0] / "ntk_analysis"
    curves = analyze_runs(runs, out)
    for label, rows in curves.items():
        for r in rows:
            d = r["kernel_distance_to_prev"]
            print(f"{label:<20} epoch {r['epoch']:>4}: distance to prev {'-' if d is None else f'{d:.4g}':>9}, "
                  f"top eigenvalue {r['top_eigenvalue']:.4g}, effective rank {r['effective_rank']:.3g}")
    print(f"wrote {out / 'ntk.json'} and {out / 'ntk.png'}")
    return 0
