"""``pgdat analyze induced RUN --epochs 10,20,...``: the AT-induced distribution's difficulty over training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from pgdat.analysis.cli_overfitting import read_history
from pgdat.analysis.plots import plt
from pgdat.cli.analyze import register_analysis
from pgdat.config import config_from_dict
from pgdat.errors import PgdatError


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


def analyze_run(run: Path, epochs: list[int], out: Path, **kw) -> list[dict]:
    """One row per epoch: robust test accuracy (from the run's log), IDE test error, local dispersion."""
    from pgdat.training.setup import prepare_data

    if not (run / "config.yaml").is_file():
        raise PgdatError(f"{run} has no config.yaml: give a run directory written by pgdat train")
    cfg = config_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    data = prepare_data(cfg.data, cfg.train.seed)
    hist = {m["epoch"]: m for m in read_history(run)}
    rows = []
    for e in epochs:
        ckpt = run / f"epoch_{e}.pt"
        if not ckpt.is_file():
            raise PgdatError(f"{ckpt} is missing: train with --set train.checkpoint_every=K so epoch_N.pt files exist")
        res = _one(ckpt, cfg, data, out / f"student_epoch_{e}", kw)
        rows.append({"epoch": e, "robust_test_acc": hist.get(e, {}).get("test_robust_acc"), **res})
    return rows


def _one(ckpt: Path, cfg, data, student_dir: Path, kw: dict) -> dict:
    from pgdat.analysis.induced import induced_experiment

    return induced_experiment(ckpt, cfg, data, student_dir, **kw)


def plot_induced(rows: list[dict], path: Path) -> None:
    """IDE test error and local dispersion against the epoch, next to the run's robust test accuracy."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ep = [r["epoch"] for r in rows]
    ax.plot(ep, [100 * r["induced_test_error"] for r in rows], "o-", color="C3", label="IDE test error (%)")
    ax.plot(ep, [100 * (r["robust_test_acc"] or float("nan")) for r in rows], "s--", color="C0",
            label="robust test acc (%)")
    ax.set_xlabel("AT epoch of the checkpoint")
    ax.set_ylabel("%")
    ax2 = ax.twinx()
    ax2.plot(ep, [r["local_dispersion"] for r in rows], "^:", color="C2", label="local dispersion")
    ax2.set_ylabel("local dispersion (L2^2)")
    fig.legend(fontsize=8, loc="upper center")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


register_analysis("induced", "AT-induced distribution: IDE test error and local dispersion per checkpoint",
                  add_arguments, run)
