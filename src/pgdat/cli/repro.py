"""``pgdat repro NAME --preset cpu|paper --seeds N --out DIR``: one command per paper experiment, tested over seeds
against its paper's claims."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgdat.cli.commands import register_command
from pgdat.errors import PgdatError


def _seeds(value: str) -> int:
    from pgdat.experiments.seeds import seed_offsets

    try:
        n = int(value)
    except ValueError:
        raise PgdatError(f"--seeds must be a whole number of seeds (got '{value}'), e.g. --seeds 3") from None
    seed_offsets(n)  # range check, same message as the library's
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="experiment name (pgdat repro --list shows them)", nargs="?")
    p.add_argument("--preset", default="cpu", help="cpu (embedded default, sized for 2 CPU cores), paper, "
                   "or an experiment's own (pgdat repro --list shows each experiment's presets)")
    p.add_argument("--seeds", default=None, help="how many seeds to run (offsets 0..N-1 added to each run's "
                   "train.seed); default: the preset's (3 for cpu presets that fit 30 min on 2 cores, else 1)")
    p.add_argument("--out", default=None, help="output directory (default repro/<name>-<preset>)")
    p.add_argument("--list", action="store_true", help="list the experiments and their claims")


def _list() -> None:
    from pgdat.experiments import EXPERIMENTS

    for name in sorted(EXPERIMENTS):
        exp = EXPERIMENTS[name]
        presets = ", ".join(f"{p} ({n} seed{'s' if n > 1 else ''})" for p, n in exp.default_seeds.items())
        print(f"{name}: {exp.title}; presets: {presets}")
        for c in exp.claims:
            right = c.right if isinstance(c.right, str) else f"{c.right:g}"
            print(f"  {c.name}: {c.left} {c.op} {right}  [{c.source}]")


@register_command("repro", "reproduce a paper experiment in one command", add_arguments)
def run(args: argparse.Namespace) -> int:
    from pgdat.experiments.runner import run_experiment

    if args.list or not args.name:
        _list()
        return 0 if args.list else 2
    seeds = None if args.seeds is None else _seeds(args.seeds)
    out = Path(args.out) if args.out else Path("repro") / f"{args.name}-{args.preset}"
    result = run_experiment(args.name, args.preset, out, seeds)
    print("\n".join(result.lines()))
    print(f"{len(result.seeds)} seed(s) in {result.wall_seconds:.0f} s; summary: {out / 'summary.md'}, "
          f"{out / 'summary.json'}, {out / 'report.html'}")
    return 0
