"""The Trainer's constructor builds objects only; ``start()`` (called by ``fit()``) does the run's I/O."""

from __future__ import annotations

import json

from pgdat.checkpoint import load_checkpoint
from pgdat.config import load_config
from pgdat.training import Trainer
from pgdat.training.callbacks import MetricsLogger
from tests.conftest import snapshot

QUICK = ["data.n_train=128", "eval.n_test=32", "eval.n_final=32", "eval.final_attacks=clean", "method.name=standard"]


def _cfg(tiny_overrides: list[str], *extra: str):
    return load_config("default", [*tiny_overrides, *QUICK, *extra])


def test_constructing_a_trainer_writes_nothing_and_fit_starts_the_run(tmp_path, tiny_overrides):
    cfg = _cfg(tiny_overrides, "train.epochs=1")
    fresh = tmp_path / "fresh"
    trainer = Trainer(cfg, fresh, callbacks=[MetricsLogger()])
    assert not fresh.exists()
    trainer.fit()  # start() is called by fit()
    assert {"init.pt", "last.pt", "metrics.jsonl", "final.json"} <= {p.name for p in fresh.iterdir()}
    assert load_checkpoint(fresh / "last.pt")["epoch"] == 1


def test_resuming_loads_in_start_not_in_the_constructor(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    Trainer(_cfg(tiny_overrides, "train.epochs=1"), run, callbacks=[MetricsLogger()]).fit()
    before = snapshot(run)
    more = Trainer(_cfg(tiny_overrides, "train.epochs=1"), run, resume=True, callbacks=[MetricsLogger()],
                   extend_epochs=1)
    assert snapshot(run) == before and more.epoch == 0 and more.cfg.train.epochs == 1  # nothing read or written
    assert more.start() is more and more.epoch == 1 and more.cfg.train.epochs == 2  # loaded and extended
    assert more.start().cfg.train.epochs == 2 and more.epoch == 1  # once: a second call neither reloads nor extends
    more.fit()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()[1:]]
    assert [r["epoch"] for r in rows] == [1, 2] and load_checkpoint(run / "last.pt")["epoch"] == 2
