"""Shared pieces of the paper experiments: train one configured run, read its history, plot curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgdat.config import load_config
from pgdat.training import Trainer


def train_run(recipe: str, overrides: list[str], out: Path, *, resume_if_done: bool = True) -> Trainer:
    """Train ``recipe`` + ``overrides`` into ``out`` (a finished run there is reused, a killed one resumed)."""
    cfg = load_config(recipe, ["eval.every=1", *overrides])  # experiments read per-epoch curves
    last = out / "last.pt"
    trainer = Trainer(cfg, out, resume=last.exists() and resume_if_done)
    from pgdat.training import write_config

    write_config(cfg, out / "config.yaml")
    if trainer.epoch < cfg.train.epochs:
        trainer.fit()
    return trainer


def per_epoch(history: list[dict[str, Any]], keys: dict[str, str]) -> list[dict[str, Any]]:
    """Rows with ``epoch`` and the renamed ``keys`` (row name -> metric key) of each epoch."""
    return [{"epoch": m["epoch"], **{name: m.get(key) for name, key in keys.items()}} for m in history]
