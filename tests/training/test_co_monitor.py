"""The catastrophic-overfitting monitor: the ratio and Wong rules, metric keys, stop and rollback."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pgdat.config import load_config
from pgdat.data.bundle import Split
from pgdat.errors import PgdatError
from pgdat.training.co_monitor import COMonitor, co_fires
from pgdat.training.run_view import RunProgress, RunView


def test_ratio_rule_needs_collapse_and_gap():
    hist = [0.40, 0.55, 0.60]
    assert co_fires("ratio", pgd=0.05, fgsm=0.80, history=hist)          # collapse while FGSM holds
    assert not co_fires("ratio", pgd=0.05, fgsm=0.10, history=hist)      # both collapsed: divergence, not CO
    assert not co_fires("ratio", pgd=0.50, fgsm=0.90, history=hist)      # healthy gap, PGD near its peak
    assert not co_fires("ratio", pgd=0.01, fgsm=0.90, history=[])        # first epoch has nothing to compare
    assert not co_fires("ratio", pgd=0.0, fgsm=0.9, history=[0.02])      # peak below min_peak


def test_wong_rule_is_a_drop_between_consecutive_checks():
    assert co_fires("wong", pgd=0.30, fgsm=0.9, history=[0.9, 0.55])
    assert not co_fires("wong", pgd=0.40, fgsm=0.9, history=[0.2, 0.55])
    with pytest.raises(PgdatError, match="rule"):
        co_fires("nope", pgd=0.1, fgsm=0.9, history=[0.5])
    with pytest.raises(PgdatError, match="rule"):
        COMonitor(rule="nope")


def _trainer(tiny_model, tiny_batch, history=(), epoch=0):
    """A run's view over the tiny model: 48 training and 16 validation images; ``history`` a list to append to."""
    x, y = tiny_batch
    data = SimpleNamespace(train=Split(x[:48].contiguous(), y[:48]), val=Split(x[48:].contiguous(), y[48:]))
    return RunView(cfg=load_config("default", ["attack.eps=0.1"]), out=None, data=data, model=tiny_model,
                   history=list(history), progress=RunProgress(epoch=epoch))


def _run(monitor, trainer, accs, monkeypatch):
    """Feed the monitor one epoch per (fgsm, pgd) pair; returns the metric dicts."""
    it = iter([a for pair in accs for a in (pair, pair)])  # same numbers on the train batch and the val split
    monkeypatch.setattr("pgdat.analysis.curvature.fgsm_pgd_gap",
                        lambda *a, **k: dict(zip(("fgsm_acc", "pgd_acc"), next(it), strict=True)))
    out = []
    for epoch, _ in enumerate(accs, start=1):
        m = {"epoch": epoch}
        monitor.on_epoch_metrics(trainer, m)
        trainer.history.append(m)
        out.append(m)
        if trainer.stop_reason:
            break
        with torch.no_grad():  # the "training" of this epoch: weights change after every check
            for p in trainer.model.parameters():
                p.add_(0.01)
    return out


HEALTHY = [(0.5, 0.30), (0.6, 0.42), (0.65, 0.45), (0.66, 0.44), (0.70, 0.47)]  # a PGD-AT-like run
COLLAPSE = [(0.5, 0.30), (0.6, 0.42), (0.65, 0.45), (0.92, 0.03), (0.95, 0.00)]  # FGSM-AT with CO at epoch 4


def test_monitor_stays_quiet_on_a_healthy_run(tiny_model, tiny_batch, monkeypatch):
    ms = _run(COMonitor(stop=True), _trainer(tiny_model, tiny_batch), HEALTHY, monkeypatch)
    assert len(ms) == 5 and not any(m["co_detected"] for m in ms) and ms[-1]["co_epoch"] is None
    assert {"co_train_fgsm_acc", "co_train_pgd_acc", "co_val_fgsm_acc", "co_val_pgd_acc"} <= set(ms[-1])


def test_monitor_fires_records_epoch_and_keeps_it(tiny_model, tiny_batch, monkeypatch):
    ms = _run(COMonitor(), _trainer(tiny_model, tiny_batch), COLLAPSE, monkeypatch)
    assert [m["co_detected"] for m in ms] == [False, False, False, True, True]
    assert [m["co_epoch"] for m in ms] == [None, None, None, 4, 4]


def test_monitor_stop_and_rollback_restore_pre_co_weights(tiny_model, tiny_batch, monkeypatch):
    trainer = _trainer(tiny_model, tiny_batch)
    start = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    ms = _run(COMonitor(stop=True, rollback=True), trainer, COLLAPSE, monkeypatch)
    assert len(ms) == 4 and ms[-1]["co_detected"] and "catastrophic overfitting at epoch 4" in trainer.stop_reason
    assert ms[-1]["co_rolled_back_to_epoch"] == 3
    for n, p in trainer.model.named_parameters():  # the epoch-3 weights: two 0.01 steps after the start
        assert torch.allclose(p, start[n] + 0.02), n


def test_rollback_right_after_a_resume_restores_the_resumed_weights(tiny_model, tiny_batch, monkeypatch):
    # a run resumed at epoch 3 (history restored, fresh monitor) whose first epoch after the resume shows CO
    history = [{"epoch": e, "co_val_pgd_acc": p, "co_train_pgd_acc": p, "co_epoch": None}
               for e, (_, p) in enumerate(COLLAPSE[:3], start=1)]
    trainer = _trainer(tiny_model, tiny_batch, history, epoch=3)
    resumed = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    monitor = COMonitor(stop=True, rollback=True)
    monkeypatch.setattr("pgdat.analysis.curvature.fgsm_pgd_gap",
                        lambda *a, **k: dict(zip(("fgsm_acc", "pgd_acc"), COLLAPSE[3], strict=True)))
    monitor.on_epoch_start(trainer)
    with torch.no_grad():  # epoch 4's training
        for p in trainer.model.parameters():
            p.add_(0.01)
    m = {"epoch": 4}
    monitor.on_epoch_metrics(trainer, m)
    assert m["co_detected"] and trainer.stop_reason and m["co_rolled_back_to_epoch"] == 3
    for n, p in trainer.model.named_parameters():
        assert torch.equal(p, resumed[n]), n


def test_each_rule_defaults_to_its_own_attack():
    from pgdat.training.co_monitor import COMonitor

    assert COMonitor("ratio").attack == "pgd-10"
    assert COMonitor("wong").attack == "pgd-5"  # Wong et al. check PGD-5 accuracy on a training minibatch
    assert COMonitor("wong", attack="pgd-20").attack == "pgd-20"
