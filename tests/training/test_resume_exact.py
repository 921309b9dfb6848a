"""Kill after an epoch's checkpoint, resume from last.pt: the run must match an uninterrupted one bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pgdat.config import load_config
from pgdat.training import Trainer
from pgdat.training.callbacks import Callback
from pgdat.training.run_view import RunView

SMALL = ["data.n_train=128", "data.val_size=50", "eval.n_test=50", "eval.n_final=20", "eval.final_attacks=clean"]


class Killed(Exception):
    pass


class KillAfter(Callback):
    """Ends the process's run right after epoch ``epoch``'s checkpoint is written (as a SIGKILL there would)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, run: RunView, metrics: dict) -> None:
        if run.epoch == self.epoch:
            raise Killed


def straight_and_resumed(tmp_path: Path, overrides: list[str], kill_after: int, callbacks=list) -> tuple[dict, dict]:
    """last.pt of an uninterrupted run and of one killed after ``kill_after`` epochs and resumed."""
    cfg = load_config("default", overrides)
    Trainer(cfg, tmp_path / "straight", callbacks=callbacks()).fit()
    with pytest.raises(Killed):
        Trainer(cfg, tmp_path / "killed", callbacks=[*callbacks(), KillAfter(kill_after)]).fit()
    Trainer(cfg, tmp_path / "killed", resume=True, callbacks=callbacks()).fit()
    return tuple(torch.load(tmp_path / run / "last.pt", weights_only=True) for run in ("straight", "killed"))


def _rows(ckpt: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in ckpt["history"]]


def test_ntk_velocity_after_a_resume_between_snapshots(tmp_path, tiny_overrides):
    # snapshots at epochs 0, 2: a run resumed at epoch 1 measures epoch 2's velocity against epoch 0's kernel too
    overrides = tiny_overrides + SMALL + ["train.epochs=2", "method.name=standard",
                                          "train.callbacks=[{name: ntk_snapshot, every: 2, probe: 8}]"]
    a, b = straight_and_resumed(tmp_path, overrides, kill_after=1)
    assert a["history"][1]["ntk_velocity"] is not None
    assert _rows(a) == _rows(b)


def test_trainer_refuses_to_resume_under_another_config(tmp_path, tiny_overrides):
    from pgdat.errors import PgdatError

    base = tiny_overrides + SMALL + ["train.epochs=1", "method.name=standard"]
    Trainer(load_config("default", base), tmp_path, callbacks=[]).fit()
    with pytest.raises(PgdatError, match=r"different config: attack.eps, optim.lr changed"):
        Trainer(load_config("default", base + ["attack.eps=0.2", "optim.lr=0.5"]), tmp_path, resume=True,
                callbacks=[]).start()
    # train.epochs sets the lr schedule: it changes only through an explicit, recorded extension
    with pytest.raises(PgdatError, match=r"train.epochs \(1 -> 2\) sets the learning-rate schedule.*--extend-epochs 1"):
        Trainer(load_config("default", base + ["train.epochs=2"]), tmp_path, resume=True, callbacks=[]).start()
    more = Trainer(load_config("default", base), tmp_path, resume=True, callbacks=[], extend_epochs=1).start()
    assert more.epoch == 1 and more.cfg.train.epochs == 2
    assert more.cfg.train.extensions == ({"at_epoch": 1, "from": 1, "to": 2},)


def test_callbacks_list_of_the_caller_is_not_extended_with_the_methods_defaults(tmp_path, tiny_overrides):
    # fgsm_at adds its CO monitor; reusing the same list for the resume must not run two of them
    cfg = load_config("default", tiny_overrides + SMALL + ["train.epochs=1", "method.name=fgsm_at"])
    mine: list[Callback] = []
    first = Trainer(cfg, tmp_path, callbacks=mine)
    assert mine == [] and [type(cb).__name__ for cb in first.callbacks] == ["COMonitor", "HealthCheck"]
