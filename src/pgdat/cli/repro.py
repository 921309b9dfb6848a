"""``pgdat repro NAME --preset cpu|paper --out DIR``: one command per paper experiment."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgdat.cli.commands import register_command
from pgdat.errors import PgdatError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="experiment name (pgdat repro --list shows them)", nargs="?")
    p.add_argument("--preset", default="cpu", help="cpu (embedded default, <= 15 min on 2 cores) or paper")
    p.add_argument("--out", default=None, help="output directory (default repro/<name>-<preset>)")
    p.add_argument("--list", action="store_true", help="list the experiments")


def run(args: argparse.Namespace) -> int:
    from pgdat.experiments import EXPERIMENTS, PRESETS, load_experiments

    load_experiments()
    if args.list or not args.name:
        print("experiments: " + (", ".join(sorted(EXPERIMENTS)) or "none"))
        return 0 if args.list else 2
    if args.preset not in PRESETS:
        raise PgdatError(f"--preset must be one of {', '.join(PRESETS)} (got '{args.preset}')")
    experiment = EXPERIMENTS.get(args.name)
    out = Path(args.out) if args.out else Path("repro") / f"{args.name}-{args.preset}"
    rows = experiment(args.preset, out)
    print(f"{len(rows)} rows written to {out / 'summary.json'} and {out / 'summary.md'}")
    return 0


register_command("repro", "reproduce a paper experiment in one command", add_arguments, run)
