"""``pgdat sweep --config R --seeds 0,1,2 --grid KEY=V1,V2 ... [--set ...] --out DIR``: one run per grid point
and seed, resumable as a whole; ``DIR/summary.json`` and ``summary.md`` hold mean, std and 95% interval over seeds."""

from __future__ import annotations

import argparse
import sys

from pgdat.cli.commands import is_interrupt, register_command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML recipe file or packaged recipe name (e.g. "
                                                  "cifar10/pgd_at_preact18); default: the embedded default")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a config key and its values, e.g. --grid attack.eps=4/255,8/255 (repeatable: the sweep "
                        "runs every combination); values read like --set values")
    p.add_argument("--seeds", default="1", help="seed offsets added to train.seed: a count (--seeds 3: offsets "
                                                "0,1,2) or a comma list (--seeds 0,1,2); default 1 (offset 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value of every run, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--out", required=True, help="sweep directory: runs go to OUT/<point>/seed<k>; rerunning the "
                                                "same command continues a killed sweep")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="train N runs at a time, each a 'pgdat train' child process (logs in OUT/logs; one GPU "
                        "each, round-robin, when several are visible); default 1: one after another here")
    p.add_argument("--replan", action="store_true",
                   help="OUT holds a sweep with another grid/seeds/--set: replace its plan (old sweep.json kept as "
                        "sweep.replaced-N.json); finished runs of points kept are reused, others stay on disk")


@register_command("sweep",
                  "a grid of config values times seeds, one resumable run each, summarised over seeds",
                  add_arguments)
def run(args: argparse.Namespace) -> int:
    from pgdat.experiments.sweep import parse_grid, parse_seeds, plan_sweep
    from pgdat.experiments.sweep_run import run_sweep

    plan = plan_sweep(args.out, args.config, args.overrides, parse_grid(args.grid), parse_seeds(args.seeds))
    try:
        result = run_sweep(plan, workers=args.workers, replan=args.replan,
                           say=lambda line: print(f"pgdat sweep: {line}", flush=True))
    except BaseException as e:
        if not is_interrupt(e):
            raise
        print("pgdat sweep: interrupted; finished runs are kept and unfinished ones resume from their last.pt: "
              "rerun the same command to continue", file=sys.stderr)
        return 130
    print((plan.out / "summary.md").read_text(), end="")
    print(f"pgdat sweep: {len(result.trained)} trained, {len(result.skipped)} already finished, "
          f"{len(result.failed)} failed; summary in {plan.out / 'summary.md'} (and summary.json); report: "
          f"pgdat report {plan.out} -o {plan.out / 'report.html'}")
    if result.failed:
        for rel, why in result.failed.items():
            print(f"pgdat sweep: failed: {plan.out / rel}: {why}")
        print("pgdat sweep: the summary holds the finished runs only; rerun the same command to retry the others")
        return 1
    return 0
