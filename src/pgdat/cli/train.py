"""``pgdat train``: train a recipe (default: PGD-AT on the embedded MNIST sample), or resume a killed run."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from pgdat.checkpoint import load_checkpoint
from pgdat.cli.commands import is_interrupt, register_command
from pgdat.config import Config, apply_overrides, config_from_dict, load_config
from pgdat.config.loader import load_yaml_file
from pgdat.errors import PgdatError
from pgdat.rundir import RunLock, check_fresh_start
from pgdat.training.validate import validate_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML recipe file or packaged recipe name "
                                                  "(e.g. cifar10/pgd_at_preact18); default: the embedded default")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 --set attack.eps=8/255 (repeatable)")
    p.add_argument("--out", default=None, help="run directory (default runs/<name>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="if --out holds a run, move it aside (renamed OUT.replaced-DATE, never deleted) and start anew")
    p.add_argument("--extend-epochs", type=int, default=0, metavar="N",
                   help="with --resume: train N epochs beyond the run's train.epochs; the longer lr schedule applies "
                        "from the next epoch on and is recorded in config.yaml (train.extensions) and metrics.jsonl")


def _resume_config(run_dir: Path, args: argparse.Namespace) -> Config:
    """The run's saved config, plus any overrides; changes that would alter the computation are refused."""
    from pgdat.training.trainer import check_resumable

    saved_dict = load_yaml_file(run_dir / "config.yaml", "the run's config")
    if not isinstance(saved_dict, dict):
        raise PgdatError(f"the run's config {run_dir / 'config.yaml'} is not a mapping of config sections (got "
                         f"{type(saved_dict).__name__}); restore it from a checkpoint's 'config' or start a new run")
    saved = config_from_dict(saved_dict)
    if args.config is None and not args.overrides:
        return saved
    new = load_config(args.config, args.overrides) if args.config else config_from_dict(
        apply_overrides(saved_dict, args.overrides))
    check_resumable(run_dir, saved, new)  # before the lock, the data or the checkpoint: the Trainer checks again
    return new


def _finished(run_dir: Path, cfg: Config) -> str | None:
    """Where the results are, if the run in ``run_dir`` is finished: its final.json was written after its last
    epoch (``train.epochs``, or the epoch a callback stopped it at); else None."""
    final = run_dir / "final.json"
    if not final.is_file():
        return None
    try:
        epochs = json.loads(final.read_text()).get("epochs")
    except (OSError, ValueError, AttributeError) as e:
        raise PgdatError(f"cannot read {final} ({e}): move it away and resume again to redo the final "
                         "evaluation") from None
    if epochs != cfg.train.epochs:
        history = load_checkpoint(run_dir / "last.pt").get("history") or [{}]
        if epochs != len(history) or "stop_reason" not in history[-1]:
            return None
    return (f"{run_dir} is finished ({epochs} epoch{'' if epochs == 1 else 's'}): its results are in {final} "
            "(and best.pt, last.pt, metrics.jsonl, curves.png); nothing was changed. To train longer: "
            f"pgdat train --resume {run_dir} --extend-epochs N")


def _interrupted_message(out: Path) -> str:
    """What an interrupted run left: last.pt (written atomically at each epoch end) is whole and resumable."""
    if (out / "last.pt").is_file():
        return (f"pgdat train: interrupted; {out / 'last.pt'} holds the last finished epoch: continue with "
                f"pgdat train --resume {out}")
    return f"pgdat train: interrupted before the first epoch finished; nothing to resume in {out}: rerun to start again"


def _check_flags(args: argparse.Namespace) -> None:
    if args.extend_epochs < 0:
        raise PgdatError(f"--extend-epochs must be >= 1 (got {args.extend_epochs}), e.g. --extend-epochs 10")
    if args.resume and args.overwrite:
        raise PgdatError("--overwrite starts a new run (moving an old one aside); it cannot go with --resume")
    if args.extend_epochs and not args.resume:
        raise PgdatError(f"--extend-epochs {args.extend_epochs} extends a run being resumed: add --resume RUN_DIR")


def _locked(out: Path, create: bool) -> contextlib.AbstractContextManager:
    """The run directory's lock, taken now (refused at once if another training holds it); only the main process
    of a distributed run locks (the others write nothing)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    lock = RunLock(out).acquire(create=create)
    if lock.took_over is not None:
        print(f"pgdat train: note: took over {lock.path}, left by a training that is gone "
              f"(pid {lock.took_over.get('pid', '?')} on host {lock.took_over.get('host', '?')})", flush=True)
    return lock


def _resume(args: argparse.Namespace) -> int:
    out = Path(args.resume)
    if not ((out / "last.pt").is_file() and (out / "config.yaml").is_file()):
        raise PgdatError(f"cannot resume {out}: it has no last.pt/config.yaml (was a first epoch finished?)")
    with _locked(out, create=False) as lock:
        cfg = _resume_config(out, args)
        finished = None if args.extend_epochs else _finished(out, cfg)
        if finished:
            print(finished)
            return 0
        return _train(cfg, out, args, lock)


@register_command("train", "train a model (default: PGD-AT on the embedded MNIST sample)", add_arguments)
def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    if args.resume:
        return _resume(args)
    cfg = load_config(args.config or "default", args.overrides)
    validate_config(cfg)  # before anything is written: e.g. its name must be one safe path component
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    with _locked(out, create=True) as lock:
        if lock is not None and check_fresh_start(out, args.overwrite):
            print(f"pgdat train: moved the old run in {out} aside to {lock.move_aside()} (--overwrite)", flush=True)
        return _train(cfg, out, args, lock)


def _train(cfg: Config, out: Path, args: argparse.Namespace, lock: RunLock | None) -> int:
    from pgdat.training import Trainer, write_config

    # start(): the run's I/O (a resumed run is loaded: trainer.cfg then holds its extension)
    trainer = Trainer(cfg, out, resume=bool(args.resume), lock=lock, extend_epochs=args.extend_epochs).start()
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
