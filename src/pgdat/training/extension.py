"""Extending a run's epochs on resume, explicitly and on the record.

The learning-rate schedule is a function of the run's total epochs, so resuming with another ``train.epochs`` would
silently splice two schedules. An extension is therefore asked for by name (``pgdat train --resume RUN
--extend-epochs N``) and recorded in ``train.extensions`` of the config (config.yaml and every later checkpoint):
``{at_epoch: E, from: T, to: T + N}`` means epochs ``0 .. E-1`` (0-based; 1..E in the logs) ran under a T-epoch
schedule and epochs from ``E`` on run under a (T + N)-epoch schedule, evaluated at the same progress (epochs
done), so the learning rate may jump at epoch E + 1 (e.g. a piecewise schedule whose milestones move).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pgdat.config import Config
from pgdat.config.schema import TrainConfig
from pgdat.errors import PgdatError


def schedule_epochs(train: TrainConfig, epoch: int) -> int:
    """The total epochs of the schedule that 0-based ``epoch`` runs under (``train.epochs`` unless extended later)."""
    for ext in train.extensions:
        if epoch < ext["at_epoch"]:
            return int(ext["from"])
    return train.epochs


def extend_config(cfg: Config, extra: int, at_epoch: int) -> Config:
    """``cfg`` trained ``extra`` more epochs, the longer schedule applying from 0-based ``at_epoch`` (the epochs
    finished when the run is resumed)."""
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 1:
        raise PgdatError(f"--extend-epochs must be an integer >= 1 (got {extra!r}), e.g. --extend-epochs 10")
    t = cfg.train
    entry = {"at_epoch": int(at_epoch), "from": t.epochs, "to": t.epochs + extra}
    return dataclasses.replace(cfg, train=dataclasses.replace(t, epochs=t.epochs + extra,
                                                              extensions=(*t.extensions, entry)))


def is_extension(saved: Config, new: Config, epoch: int) -> bool:
    """Whether ``new`` is ``saved`` extended at 0-based ``epoch`` (the checkpoint's epoch), nothing else changed in
    ``train`` but the epochs."""
    exts = new.train.extensions
    if len(exts) != len(saved.train.extensions) + 1 or exts[:-1] != saved.train.extensions:
        return False
    last = exts[-1]
    return last == {"at_epoch": epoch, "from": saved.train.epochs, "to": new.train.epochs} and \
        new.train.epochs > saved.train.epochs


def extension_record(train: TrainConfig) -> list[dict[str, Any]]:
    """The extensions as plain dicts (for metrics.jsonl's header)."""
    return [dict(e) for e in train.extensions]
