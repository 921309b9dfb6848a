"""``pgdat analyze induced RUN --epochs 10,20,...``: the AT-induced distribution's difficulty over training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pgdat.analysis.induced import plot_induced
from pgdat.cli.commands import register_analysis
from pgdat.errors import PgdatError
from pgdat.experiments.induced_students import analyze_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a PGD-AT run directory trained with train.checkpoint_every=K (epoch_N.pt files)")
    p.add_argument("--epochs", required=True, help="comma-separated epochs whose epoch_N.pt to analyse")
    p.add_argument("--student-epochs", type=int, default=30, help="standard-training epochs of each IDE student")
    p.add_argument("--student-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the student recipe (e.g. optim.lr=0.01)")
    p.add_argument("--sigma", type=float, default=0.01, help="std of the anchor noise rho for the local dispersion")
    p.add_argument("--pairs", type=int, default=10, help="Monte Carlo pairs (rho, rho') per point (paper: 250)")
    p.add_argument("--n-dispersion", type=int, default=100, help="test points for the local dispersion")
    p.add_argument("--device", default="cpu", help="device that trains the students (default cpu)")
    p.add_argument("--out", default=None, help="output directory (default RUN/induced)")


@register_analysis("induced",
                   "AT-induced distribution: IDE test error and local dispersion per checkpoint",
                   add_arguments)
def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    out = Path(args.out) if args.out else run_dir / "induced"
    try:
        epochs = [int(e) for e in args.epochs.split(",") if e.strip()]
    except ValueError:
        raise PgdatError(f"--epochs must be comma-separated epochs like 10,20,30 (got '{args.epochs}')") from None
    if not epochs:
        raise PgdatError("--epochs names no epoch: give the epochs whose epoch_N.pt to analyse, e.g. 10,20,30")
    rows = analyze_run(run_dir, epochs, out, student_epochs=args.student_epochs, student_overrides=args.student_set,
                       sigma=args.sigma, pairs=args.pairs, n_dispersion=args.n_dispersion, device=args.device)
    out.mkdir(parents=True, exist_ok=True)
    (out / "induced.json").write_text(json.dumps(rows, indent=2))
    plot_induced(rows, out / "induced.png")
    for r in rows:
        print(f"epoch {r['epoch']:>4}: robust test {r['robust_test_acc']}, IDE test error {r['induced_test_error']:.4f}"
              f", local dispersion {r['local_dispersion']:.4g}")
    print(f"wrote {out / 'induced.json'} and {out / 'induced.png'}")
    return 0
