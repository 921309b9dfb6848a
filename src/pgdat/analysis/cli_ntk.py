"""``pgdat analyze ntk RUN``: kernel velocity and spectrum over training from the run's NTK snapshots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pgdat.analysis.plots import plt
from pgdat.cli.analyze import register_analysis


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories trained with the NTKSnapshot callback (RUN/ntk/epoch_E.pt)")
    p.add_argument("--out", default=None, help="output directory (default: RUN/ntk_analysis for one run)")


def plot_ntk(curves: dict[str, list[dict[str, Any]]], spectra: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """Three panels over epochs: kernel distance to the previous snapshot (log y), top eigenvalue, effective rank;
    a fourth panel with each run's last eigen-spectrum (log y)."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for i, (label, rows) in enumerate(curves.items()):
        pts = [r for r in rows if r["kernel_distance_to_prev"] is not None]
        axes[0].plot([r["epoch"] for r in pts], [r["velocity_per_epoch"] for r in pts], "o-", color=f"C{i}",
                     label=label)
        axes[1].plot([r["epoch"] for r in rows], [r["top_eigenvalue"] for r in rows], "o-", color=f"C{i}")
        axes[2].plot([r["epoch"] for r in rows], [r["effective_rank"] for r in rows], "o-", color=f"C{i}")
        last = spectra[label][-1]
        axes[3].semilogy(range(1, len(last["eigenvalues"]) + 1), last["eigenvalues"], ".-", color=f"C{i}",
                         label=f"{label} (epoch {rows[-1]['epoch']})")
    axes[0].set_yscale("log")
    for ax, t in zip(axes, ("kernel velocity S(K_t, K_t+1)/epoch", "top eigenvalue", "effective rank",
                            "spectrum at the last snapshot"), strict=True):
        ax.set_title(t, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xlabel("eigenvalue index" if "spectrum" in t else "epoch")
    axes[0].legend(fontsize=8)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def analyze_runs(runs: list[Path], out: Path) -> dict[str, list[dict[str, Any]]]:
    """Rows per run (see :func:`pgdat.analysis.ntk.snapshot_rows`), ``out/ntk.json`` and ``out/ntk.png``."""
    from pgdat.analysis.ntk import load_snapshots, snapshot_rows

    curves, spectra = {}, {}
    for run_dir in runs:
        snaps = load_snapshots(run_dir)
        curves[run_dir.name] = snapshot_rows(snaps)
        spectra[run_dir.name] = [s["spectrum"] for s in snaps]
    out.mkdir(parents=True, exist_ok=True)
    (out / "ntk.json").write_text(json.dumps({"runs": curves, "spectra": spectra}, indent=2))
    plot_ntk(curves, spectra, out / "ntk.png")
    return curves


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


register_analysis("ntk", "empirical NTK over training: kernel velocity and spectrum from NTKSnapshot files",
                  add_arguments, run)
