"""``pgdat analyze criticality RUN_OR_CHECKPOINT ... --data NAME --out DIR``: layer criticality of one or more runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pgdat.cli.commands import register_analysis


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories or checkpoint files (label=PATH to name a row)")
    p.add_argument("--data", default="mnist5k", help="dataset whose test split gives the evaluation subset")
    p.add_argument("--n", type=int, default=1000, help="size of the fixed evaluation subset (first N test images)")
    p.add_argument("--reset", default="rerandomize", choices=("rerandomize", "reinit", "zero"),
                   help="rerandomize: fresh draw of the architecture's init (paper); reinit: the run's init.pt")
    p.add_argument("--layers", default="conv+linear", choices=("conv+linear", "conv+linear+bn", "block"),
                   help="reset units: each conv/linear (paper), also each BatchNorm, or all layers of one stage")
    p.add_argument("--trials", type=int, default=3, help="random draws per layer (paper: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the re-randomised layer draws (rerandomize)")
    p.add_argument("--eps", default=None, help="also measure on PGD examples of this Linf/L2 radius (e.g. 8/255)")
    p.add_argument("--norm", default="linf", choices=("linf", "l2"), help="norm of --eps (default linf)")
    p.add_argument("--steps", type=int, default=10,
                   help="PGD steps for the adversarial inputs (step size 2.5 eps/steps)")
    p.add_argument("--out", required=True, help="output directory (criticality.json, criticality.md, heatmap.png)")


@register_analysis("criticality",
                   "layer criticality: reset each conv/linear layer and measure the output change",
                   add_arguments)
def run(args: argparse.Namespace) -> int:
    from pgdat.analysis.criticality import checkpoint_criticality, format_table, load_subset, plot_heatmap
    from pgdat.checkpoint import check_fits_dataset, load_checkpoint, resolve_checkpoint
    from pgdat.data import dataset_info
    from pgdat.threat import parse_eps

    info = dataset_info(args.data)
    for spec in args.runs:  # every model fits --data before the data is loaded (maybe downloaded)
        check_fits_dataset(load_checkpoint(resolve_checkpoint(spec.rpartition("=")[2])), info, args.data)
    x, y, idx = load_subset(args.data, args.n)
    adv = None
    if args.eps is not None:
        eps = parse_eps(args.eps, "--eps", norm=args.norm)
        adv = {"eps": eps, "step_size": 2.5 * eps / args.steps, "steps": args.steps, "norm": args.norm}
    results = {}
    for spec in args.runs:
        label, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        results[label] = checkpoint_criticality(path, x, y, reset=args.reset, layers=args.layers,
                                                trials=args.trials, seed=args.seed, adversarial=adv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"data": args.data, "indices": idx, "runs": results}
    (out / "criticality.json").write_text(json.dumps(payload, indent=2))
    kinds = ["clean"] + (["adv"] if adv else [])
    text = "\n\n".join(format_table({k: r[kind] for k, r in results.items()}) for kind in kinds)
    (out / "criticality.md").write_text("```\n" + text + "\n```\n")
    for kind in kinds:
        plot_heatmap({k: r[kind] for k, r in results.items()}, out / f"heatmap_{kind}.png",
                     title=f"layer criticality ({kind} inputs, reset={args.reset})")
    print(text)
    print(f"wrote {out / 'criticality.json'}, {out / 'criticality.md'} and heatmap_*.png")
    return 0
