"""Shared pieces of the paper experiments: train one configured run, read its history, plot curves."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pgdat.checkpoint import load_checkpoint
from pgdat.config import Config, config_from_dict, config_to_dict, load_config
from pgdat.errors import PgdatError
from pgdat.experiments.seeds import seed_override
from pgdat.training import Trainer


def trained_with(last: Path, cfg: Config) -> bool:
    """Whether the checkpoint ``last`` was trained with ``cfg`` (a run of a changed or older preset was not)."""
    try:
        stored = config_from_dict(load_checkpoint(last)["config"])
    except (PgdatError, KeyError):
        return False
    return config_to_dict(stored) == config_to_dict(cfg)


def run_config(recipe: str, overrides: list[str] | tuple[str, ...], seed: int = 0) -> Config:
    """The config :func:`train_run` trains: ``recipe`` + ``eval.every=1`` (experiments read per-epoch curves) +
    ``overrides``, with seed offset ``seed`` added to the configured ``train.seed``."""
    cfg = load_config(recipe, ["eval.every=1", *overrides])
    if seed:
        cfg = load_config(recipe, ["eval.every=1", *overrides, seed_override(cfg.train.seed, seed)])
    return cfg


def train_run(recipe: str, overrides: list[str], out: Path, *, resume_if_done: bool = True,
              callbacks: list | None = None, stale: tuple[str, ...] = (), seed: int = 0) -> Trainer:
    """Train ``recipe`` + ``overrides`` into ``out``: a finished run there with the same config is reused (its final
    evaluation redone if it is missing), a killed one resumed, a run with another config retrained from scratch.

    callbacks: the Trainer's callbacks (None: its defaults). stale: further folders under ``out`` written
    by those callbacks (e.g. ``ntk``), removed with ``final.json`` before a fresh start so an old run's outputs are
    not read as this run's. seed: offset added to the configured ``train.seed`` (0: the run as configured).
    """
    cfg = run_config(recipe, overrides, seed)
    last = out / "last.pt"
    resume = last.exists() and resume_if_done and trained_with(last, cfg)
    if not resume:
        (out / "final.json").unlink(missing_ok=True)  # a stale final evaluation must not be read as this run's
        for name in stale:
            shutil.rmtree(out / name, ignore_errors=True)
    trainer = Trainer(cfg, out, resume=resume, callbacks=callbacks).start()  # a resumed run's epoch is loaded
    from pgdat.training import write_config

    write_config(cfg, out / "config.yaml")
    if (trainer.epoch < cfg.train.epochs and trainer.stop_reason is None) or not (out / "final.json").exists():
        trainer.fit()
    return trainer


def per_epoch(history: list[dict[str, Any]], keys: dict[str, str]) -> list[dict[str, Any]]:
    """Rows with ``epoch`` and the renamed ``keys`` (row name -> metric key) of each epoch."""
    return [{"epoch": m["epoch"], **{name: m.get(key) for name, key in keys.items()}} for m in history]
