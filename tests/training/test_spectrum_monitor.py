"""The spectrum_monitor callback (C1/C2 of the NTK-AT notes): the MAD jump rule, flags, actions, logging next to
the CO monitor."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from pgdat.config import load_config
from pgdat.config.schema import AttackConfig
from pgdat.data.bundle import Split
from pgdat.errors import PgdatError
from pgdat.methods import StepContext, craft
from pgdat.methods.base import ATTACK_COST, ATTACK_OVERRIDE
from pgdat.training.run_view import RunView
from pgdat.training.spectrum_monitor import SPECTRAL_STATS, SpectrumMonitor, flag_lead, mad_jump


def test_mad_jump_score():
    assert mad_jump([1.0, 1.1, 0.9, 1.0], 2.0) == pytest.approx(20.0)  # median 1, MAD 0.05
    assert mad_jump([1.0, 1.1], 5.0) is None  # fewer than min_history earlier values
    assert mad_jump([2.0, 2.0, 2.0], 2.05) == pytest.approx(0.5)  # MAD 0: floor 0.05 * |median| = 0.1
    assert mad_jump([9.0, 9.0, 1.0, 1.1, 0.9, 1.0, 1.0], 2.0, window=5) == pytest.approx(20.0)  # last 5 only
    assert mad_jump([1.0, 1.1, 0.9, 1.0], 0.5) == pytest.approx(-10.0)


def _trainer(tiny_model, tiny_batch):
    x, y = tiny_batch
    return RunView(cfg=load_config("default", ["attack.eps=0.1"]), out=None, model=tiny_model,
                   data=SimpleNamespace(train=Split(x.contiguous(), y)))


SERIES = [1.0, 1.02, 0.98, 1.01, 3.0, 3.1]  # a jump at the 5th measurement


@pytest.fixture
def fake_stat():
    """A registered statistic "fake" that returns the values appended to the yielded list, in order."""
    values: list[float] = []
    SPECTRAL_STATS["fake"] = lambda *a: values.pop(0)
    yield values
    del SPECTRAL_STATS["fake"]


def _epochs(monitor, trainer, epochs, train_epoch):
    """``epochs`` epochs of the monitor's hooks around ``train_epoch()``; the per-epoch metrics rows."""
    rows = []
    for _ in range(epochs):
        monitor.on_epoch_start(trainer)
        train_epoch()
        trainer.progress.epoch += 1  # the trainer's part: the epoch is complete
        m = {"epoch": trainer.epoch}
        monitor.on_epoch_metrics(trainer, m)
        rows.append(m)
    return rows


def _feed(monitor, trainer, values, series=SERIES):
    values[:] = list(series)

    def train_epoch():
        with torch.no_grad():  # the epoch's "training"
            for p in trainer.model.parameters():
                p.add_(0.01)

    return _epochs(monitor, trainer, len(series), train_epoch)


def test_flags_the_jump_and_takes_the_actions(tiny_model, tiny_batch, fake_stat):
    trainer = _trainer(tiny_model, tiny_batch)
    start = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    monitor = SpectrumMonitor(stat="fake", probe=8, on_flag=["rollback", "pgd2", "stop"])
    rows = _feed(monitor, trainer, fake_stat, SERIES[:5])
    assert [r["spectral_flag"] for r in rows] == [False, False, False, False, True]
    assert [r["spectral_score"] is None for r in rows] == [True, True, True, False, False]
    assert rows[-1]["spectral_flag_epoch"] == 5 and rows[3]["spectral_flag_epoch"] is None
    actions = rows[-1]["spectral_actions"]
    assert actions["rollback"] == {"epoch": 4, "step": 0} and "epoch 5" in trainer.stop_reason
    for n, p in tiny_model.named_parameters():  # the epoch-4 weights: four 0.01 steps after the start
        assert torch.allclose(p, start[n] + 0.04), n
    assert trainer.state[ATTACK_OVERRIDE]["preset"] == "pgd2"
    ctx = StepContext(attack=AttackConfig(eps=0.1, step_size=0.05, steps=7), attack_model=tiny_model,
                      state=trainer.state)
    x, y = tiny_batch
    craft(ctx, x, y, steps=1)  # a single-step method's call now runs PGD-2
    assert trainer.state[ATTACK_COST]["grad_evals"] == 2 * len(x)
    json.dumps(rows)  # metrics stay JSON-serialisable


def test_direction_and_quiet_series(tiny_model, tiny_batch, fake_stat):
    rows = _feed(SpectrumMonitor(stat="fake", probe=8, direction="down"), _trainer(tiny_model, tiny_batch),
                 fake_stat)
    assert not any(r["spectral_flag"] for r in rows) and rows[-1]["spectral_flag_epoch"] is None
    steady = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98]
    rows = _feed(SpectrumMonitor(stat="fake", probe=8), _trainer(tiny_model, tiny_batch), fake_stat, steady)
    assert not any(r["spectral_flag"] for r in rows)


def test_every_steps_mode_records_the_flag_step(tiny_model, tiny_batch, fake_stat):
    trainer = _trainer(tiny_model, tiny_batch)
    fake_stat[:] = SERIES
    monitor = SpectrumMonitor(stat="fake", probe=8, every_steps=2)
    rows = []
    for _ in range(2):  # two epochs of 6 steps: measurements at steps 2, 4, ..., 12
        monitor.on_epoch_start(trainer)
        for _ in range(6):
            monitor.on_step_end(trainer, {})
        trainer.progress.epoch += 1
        m = {"epoch": trainer.epoch}
        monitor.on_epoch_metrics(trainer, m)
        rows.append(m)
    assert [r["spectral_flag"] for r in rows] == [False, True]
    assert rows[1]["spectral_flag_step"] == 10 and rows[1]["spectral_flag_epoch"] == 2
    assert rows[1]["spectral_stat"] == 3.1


def test_lambda_max_statistic_on_the_balanced_probe(tiny_model, tiny_batch):
    from pgdat.analysis.ntk import balanced_probe, lambda_max

    trainer = _trainer(tiny_model, tiny_batch)
    rec = SpectrumMonitor(probe=8, iters=5).measure(trainer)
    pos = balanced_probe(tiny_batch[1], 8, seed=0)
    assert rec["spectral_stat"] == pytest.approx(lambda_max(tiny_model, tiny_batch[0][pos], iters=5, seed=0))
    assert rec["spectral_stat"] > 0 and rec["spectral_score"] is None and not tiny_model.training
    dist = SpectrumMonitor(stat="clean_adv_distance", probe=8, adv_steps=2).measure(_trainer(tiny_model, tiny_batch))
    assert 0 < dist["spectral_stat"] < 1


@pytest.mark.parametrize("kw", [{"stat": "trace"}, {"on_flag": "restart"}, {"direction": "sideways"}, {"z": 0},
                                {"min_history": 9}, {"probe": 1}])
def test_bad_options(kw):
    with pytest.raises(PgdatError):
        SpectrumMonitor(**kw)


def test_flag_lead():
    hist = [{"co_epoch": None, "spectral_flag_epoch": None}, {"co_epoch": None, "spectral_flag_epoch": 2},
            {"co_epoch": 4, "spectral_flag_epoch": 2}]
    assert flag_lead(hist) == {"spectral_flag_epoch": 2, "co_epoch": 4, "lead_epochs": 2}
    assert flag_lead(hist[:2])["lead_epochs"] is None


def test_logged_next_to_the_co_monitor_in_a_run(tmp_path):
    from pgdat.training import Trainer
    from pgdat.training.callbacks import MetricsLogger

    cfg = load_config("default", [
        "data.n_train=128", "data.val_size=64", "data.batch_size=64", "attack.eps=0.1", "eval.attack=clean",
        "eval.n_test=64", "eval.final_attacks=clean", "eval.n_final=64", "train.epochs=2", "train.progress=false",
        "method.name=fgsm_at", "train.callbacks=[{name: co_monitor, n_train: 32, n_val: 32, attack: pgd-2}, "
        "{name: spectrum_monitor, probe: 8, iters: 3, min_history: 1}]"])
    Trainer(cfg, tmp_path, callbacks=[MetricsLogger()]).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()[1:]]
    for r in rows:
        assert {"co_detected", "co_epoch", "spectral_stat", "spectral_flag", "spectral_flag_epoch"} <= set(r)
        assert r["spectral_stat"] > 0
    assert rows[0]["spectral_score"] is None and rows[1]["spectral_score"] is not None
    assert set(flag_lead(rows)) == {"spectral_flag_epoch", "co_epoch", "lead_epochs"}


def _resumed(trainer, tiny_model):
    """The run's view a resume from a checkpoint of ``trainer`` gives: the state through torch.save/load
    (weights_only, as the trainer saves it), the model's weights copied into a fresh module."""
    import copy
    import dataclasses
    import io

    buf = io.BytesIO()
    torch.save({"method_state": trainer.state, "model": trainer.model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    model = copy.deepcopy(tiny_model)
    model.load_state_dict(ckpt["model"])
    return dataclasses.replace(trainer, model=model, attack_model=model, state=ckpt["method_state"],
                               progress=dataclasses.replace(trainer.progress))


def _step_epochs(monitor, trainer, epochs, steps):
    def train_epoch():
        for _ in range(steps):
            monitor.on_step_end(trainer, {})

    return _epochs(monitor, trainer, epochs, train_epoch)


def test_every_steps_mode_resumes_at_the_same_steps(tiny_model, tiny_batch, fake_stat):
    fake_stat[:] = SERIES
    straight = _step_epochs(SpectrumMonitor(stat="fake", probe=8, every_steps=2), _trainer(tiny_model, tiny_batch),
                            4, 3)  # measurements at run steps 2, 4, ..., 12: the jump at step 10 (epoch 4)
    fake_stat[:] = SERIES
    trainer = _trainer(tiny_model, tiny_batch)
    rows = _step_epochs(SpectrumMonitor(stat="fake", probe=8, every_steps=2), trainer, 1, 3)
    rows += _step_epochs(SpectrumMonitor(stat="fake", probe=8, every_steps=2), _resumed(trainer, tiny_model), 3, 3)
    assert rows == straight
    assert straight[3]["spectral_flag_step"] == 10 and straight[3]["spectral_flag_epoch"] == 4


def test_rollback_after_a_resume_restores_the_weights_an_uninterrupted_run_kept(tiny_model, tiny_batch, fake_stat):
    import copy

    straight_trainer = _trainer(copy.deepcopy(tiny_model), tiny_batch)
    straight = _feed(SpectrumMonitor(stat="fake", probe=8, on_flag="rollback"), straight_trainer, fake_stat)
    assert [r["spectral_flag"] for r in straight] == [False] * 4 + [True, True]  # both roll back to epoch 4
    trainer = _trainer(copy.deepcopy(tiny_model), tiny_batch)
    rows = _feed(SpectrumMonitor(stat="fake", probe=8, on_flag="rollback"), trainer, fake_stat, SERIES[:5])
    resumed = _resumed(trainer, tiny_model)  # killed after the flagged epoch 5: the kept weights are epoch 4's
    rows += _feed(SpectrumMonitor(stat="fake", probe=8, on_flag="rollback"), resumed, fake_stat, SERIES[5:])
    assert rows == straight
    for (n, p), q in zip(straight_trainer.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q), n
