"""Callbacks see a RunView, never the Trainer; the Trainer's constructor builds, ``start()`` does the run's I/O."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pgdat.checkpoint import load_checkpoint
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.methods.base import ATTACK_OVERRIDE
from pgdat.training import Trainer
from pgdat.training.callbacks import Callback, MetricsLogger
from pgdat.training.run_view import RunView

QUICK = ["data.n_train=128", "eval.n_test=32", "eval.n_final=32", "eval.final_attacks=clean", "method.name=standard"]


class Recorder(Callback):
    """Keeps the view each hook received and the step counter seen after every optimizer step."""

    def __init__(self) -> None:
        self.views: list[RunView] = []
        self.steps: list[int] = []

    def on_epoch_start(self, run: RunView) -> None:
        self.views.append(run)

    def on_step_end(self, run: RunView, out: dict) -> None:
        self.steps.append(run.step)


class StopAt(Callback):
    """Requests a stop in ``on_epoch_metrics`` of epoch ``epoch`` (1-based)."""

    def __init__(self, epoch: int, reason: str) -> None:
        self.epoch, self.reason = epoch, reason

    def on_epoch_metrics(self, run: RunView, metrics: dict) -> None:
        if run.epoch == self.epoch:
            run.request_stop(self.reason)


def _cfg(tiny_overrides: list[str], *extra: str):
    return load_config("default", [*tiny_overrides, *QUICK, *extra])


def test_a_callback_gets_the_documented_view_and_cannot_reach_the_trainer(tmp_path, tiny_overrides):
    rec = Recorder()
    trainer = Trainer(_cfg(tiny_overrides, "train.epochs=1"), tmp_path, callbacks=[rec])
    trainer.fit()
    run = rec.views[0]
    assert type(run) is RunView and not hasattr(run, "trainer")
    names = [f.name for f in dataclasses.fields(RunView)]
    doc = RunView.__doc__
    assert all(f"``{name}``" in doc for name in names), [n for n in names if f"``{n}``" not in doc]
    assert not any(isinstance(getattr(run, name), Trainer) for name in names)
    assert not any(isinstance(cb, Trainer) for cb in run.callbacks)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.trainer = trainer  # frozen: no attribute can be added
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.model = None
    assert set(vars(run)) == set(names)  # the fields, nothing else
    with pytest.raises(AttributeError):
        run.epoch = 5  # a read-only counter
    with pytest.raises(TypeError):
        run.header["seed"] = 1  # read-only mapping
    # the view holds the run's own objects, live
    assert run.model is trainer.model and run.optimizer is trainer.optimizer and run.history is trainer.history
    assert run.state is trainer.method_state and run.out == tmp_path and run.epoch == trainer.epoch == 1
    assert run.header["seed"] == trainer.header["seed"] and run.best_epoch == trainer.best["epoch"] == 1


def test_step_counts_optimizer_steps_over_the_run(tmp_path, tiny_overrides):
    rec = Recorder()
    Trainer(_cfg(tiny_overrides, "train.epochs=2"), tmp_path, callbacks=[rec]).fit()
    per_epoch = rec.views[0].steps_per_epoch
    assert per_epoch == 128 // 64 and rec.steps == list(range(1, 2 * per_epoch + 1))


def test_request_stop_ends_training_after_the_epoch_and_records_why(tmp_path, tiny_overrides):
    cbs = [MetricsLogger(), StopAt(1, "probe says stop"), StopAt(1, "second opinion"), StopAt(1, "probe says stop")]
    summary = Trainer(_cfg(tiny_overrides, "train.epochs=3"), tmp_path, callbacks=cbs).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()[1:]]
    assert [r["epoch"] for r in rows] == [1]  # epochs 2 and 3 never ran
    assert rows[0]["stop_reason"] == "probe says stop; second opinion"  # both requests kept, none twice
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1 and summary["epochs"] == 1
    with pytest.raises(PgdatError, match="non-empty reason"):
        RunView(cfg=load_config("default"), out=tmp_path, model=None).request_stop("")


def test_request_rollback_and_override_attack(tiny_model):
    run = RunView(cfg=load_config("default"), out=None, model=tiny_model)
    kept = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(1.0)
    run.request_rollback(kept)
    assert all(torch.equal(v, kept[k]) for k, v in tiny_model.state_dict().items())
    run.progress.epoch = 4
    run.override_attack("pgd2")
    assert run.state[ATTACK_OVERRIDE] == {"preset": "pgd2", "since_epoch": 4}
    with pytest.raises(PgdatError, match="unknown attack preset 'pgd7'"):
        run.override_attack("pgd7")
