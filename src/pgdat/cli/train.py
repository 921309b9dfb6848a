"""``pgdat train``: train a recipe (default: PGD-AT on the embedded MNIST sample), or resume a killed run."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from pgdat.cli.main import is_interrupt, register_command
from pgdat.config import apply_overrides, config_from_dict, config_to_dict, load_config
from pgdat.errors import PgdatError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML recipe file or packaged recipe name "
                                                  "(e.g. cifar10/pgd_at_preact18); default: the embedded default")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 --set attack.eps=8/255 (repeatable)")
    p.add_argument("--out", default=None, help="run directory (default runs/<name>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")


def _resume_config(run_dir: Path, args: argparse.Namespace):
    """The run's saved config, plus any overrides; changes that would alter the computation are refused."""
    from pgdat.training.trainer import RESUMABLE_CHANGES, config_changes

    saved_path = run_dir / "config.yaml"
    if not (run_dir / "last.pt").is_file() or not saved_path.is_file():
        raise PgdatError(f"cannot resume {run_dir}: it has no last.pt/config.yaml (was a first epoch finished?)")
    saved_dict = yaml.safe_load(saved_path.read_text())
    saved = config_from_dict(saved_dict)
    if args.config is None and not args.overrides:
        return saved
    new = load_config(args.config, args.overrides) if args.config else config_from_dict(
        apply_overrides(saved_dict, args.overrides))
    bad = config_changes(config_to_dict(saved), config_to_dict(new))
    if bad:
        raise PgdatError(f"cannot resume {run_dir} with a different config: {', '.join(bad)} changed "
                         f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change); start a new run with --out")
    return new


def _interrupted_message(out: Path) -> str:
    """What an interrupted run left: last.pt (written atomically at each epoch end) is whole and resumable."""
    if (out / "last.pt").is_file():
        return (f"pgdat train: interrupted; {out / 'last.pt'} holds the last finished epoch: continue with "
                f"pgdat train --resume {out}")
    return f"pgdat train: interrupted before the first epoch finished; nothing to resume in {out}: rerun to start again"


def run(args: argparse.Namespace) -> int:
    from pgdat.training import Trainer, write_config

    if args.resume:
        out = Path(args.resume)
        cfg = _resume_config(out, args)
    else:
        cfg = load_config(args.config or "default", args.overrides)
        out = Path(args.out) if args.out else Path("runs") / re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.name)
        if (out / "last.pt").exists():
            raise PgdatError(f"{out} already holds a run: resume it with --resume {out}, or pick another --out")
    trainer = Trainer(cfg, out, resume=bool(args.resume))
    if trainer.dist.is_main:
        write_config(trainer.cfg, out / "config.yaml")  # as resolved (data.extra: sha256, n_images)
    try:
        summary = trainer.fit()
    except BaseException as e:
        if not is_interrupt(e):
            raise
        if trainer.dist.is_main:
            print(_interrupted_message(out), file=sys.stderr)
        return 130
    if trainer.dist.is_main and summary:
        for which in ("best", "last"):
            if which in summary:
                accs = ", ".join(f"{k} {100 * v:.2f}%" for k, v in summary[which]["accuracy"].items())
                ep = f" (epoch {summary['best_epoch']}, by {summary['selected_by']})" if which == "best" else ""
                print(f"{which}{ep}: test {accs} on {summary['n']} images")
        print(f"run saved in {out} (config.yaml, metrics.jsonl, curves.png, best.pt, last.pt, final.json)")
    return 0


register_command("train", "train a model (default: PGD-AT on the embedded MNIST sample)", add_arguments, run)
