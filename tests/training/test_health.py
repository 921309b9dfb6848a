"""The trainer's health check: a diverging loss and a run stuck at chance are flagged in metrics.jsonl, the console
and final.json; a healthy run is not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pgdat.config import load_config
from pgdat.methods import METHODS
from pgdat.methods.facts import method_facts, register_method
from pgdat.training import Trainer
from pgdat.training.health import at_chance, chance_rate, diverged


def _epochs(run: Path) -> list[dict]:
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()[1:]]


def test_chance_rate_is_the_largest_class_share():
    assert chance_rate(torch.tensor([0, 1, 2, 3])) == 0.25
    assert chance_rate(torch.tensor([0, 0, 0, 1, 2])) == pytest.approx(0.6)


def test_diverged_flags_growth_and_runaway_negative_loss_only():
    ok = [{"epoch": e + 1, "train_loss": v} for e, v in enumerate([2.3, 1.0, 0.5, 0.8])]  # eps ramp-up: mild rise
    assert diverged(ok, 10) is None
    up = ok + [{"epoch": 5, "train_loss": 4 * math.log(10) + 0.1}]
    assert "epoch 5" in diverged(up, 10)
    down = [{"epoch": 1, "train_loss": -2.0}, {"epoch": 2, "train_loss": -50.0}]  # unbounded below (a sign error)
    assert "loss -50" in diverged(down, 10)


def test_at_chance_needs_the_whole_window_at_chance():
    chance = {"train": 0.1, "val": 0.1}
    stuck = [{"train_clean_acc": a} for a in (0.35, 0.11, 0.10, 0.09)]  # collapsed after epoch 1
    assert "stayed at chance" in at_chance(stuck, chance, total_epochs=4)
    assert at_chance(stuck[:2], chance, total_epochs=4) is None  # fewer epochs than the window: not yet
    learning = [{"train_clean_acc": a} for a in (0.10, 0.11, 0.13)]
    assert at_chance(learning, chance, total_epochs=3) is None
    val_only = [{"train_clean_acc": None, "val_clean_acc": 0.1}] * 3  # methods without clean logits: validation
    assert "clean val accuracy" in at_chance(val_only, chance, total_epochs=3)


@pytest.fixture
def ascent_method():
    """A method that maximises cross-entropy (the loss is -CE): a sign error, so its loss runs off to -infinity."""

    def ascent(model, x, y, ctx):
        logits = model(x)
        return {"loss": -F.cross_entropy(logits.float(), y), "logits_clean": logits}

    register_method("test_ascent", method_facts("standard"))(ascent)  # a clean-training loss, gone wrong
    yield "test_ascent"
    del METHODS["test_ascent"]


def test_diverging_loss_is_flagged_in_metrics_console_and_final(tmp_path, tiny_overrides, ascent_method, capsys):
    cfg = load_config("default", tiny_overrides + [f"method.name={ascent_method}", "optim.name=sgd", "optim.lr=0.01",
                                                   "optim.schedule=constant"])
    Trainer(cfg, tmp_path / "run").fit()
    epochs = _epochs(tmp_path / "run")
    assert any("training loss diverged" in f for m in epochs for f in m["health_flags"])
    assert min(m["train_loss"] for m in epochs) < -4 * math.log(10)  # the loss really ran away
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert any("training loss diverged" in f for f in final["health"]["flags"])
    assert "HEALTH:" in capsys.readouterr().out


@pytest.fixture
def collapse_method():
    """A method whose loss drives every prediction to class 0: training collapses to one class (as REAT's
    ``paper_intent`` did, issue 24)."""

    def collapse(model, x, y, ctx):
        logits = model(x)
        return {"loss": F.cross_entropy(logits.float(), torch.zeros_like(y)), "logits_clean": logits}

    register_method("test_collapse", method_facts("standard"))(collapse)
    yield "test_collapse"
    del METHODS["test_collapse"]


def test_run_stuck_at_chance_is_flagged(tmp_path, tiny_overrides, collapse_method):
    cfg = load_config("default", tiny_overrides + [f"method.name={collapse_method}"])
    Trainer(cfg, tmp_path / "run").fit()
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    accs = [m["train_clean_acc"] for m in _epochs(tmp_path / "run")]
    assert max(accs[1:]) <= final["health"]["chance"]["train"] + 0.02  # collapsed to one class...
    assert final["last"]["accuracy"]["clean"] <= 0.15  # ...also on the balanced test set...
    assert any("stayed at chance" in f for f in final["health"]["flags"])  # ...and flagged


def test_healthy_run_has_no_flags(tmp_path, tiny_overrides):
    cfg = load_config("default", tiny_overrides + ["method.name=standard"])
    Trainer(cfg, tmp_path / "run").fit()
    assert all(m["health_flags"] == [] for m in _epochs(tmp_path / "run"))
    assert json.loads((tmp_path / "run" / "final.json").read_text())["health"]["flags"] == []


def test_run_flags_keep_at_chance_only_while_it_holds_and_divergence_always():
    """Random labels fitted slowly (at chance for the first epochs, then learning) end unflagged; a run still at
    chance at its end keeps the flag with its last epoch's text; a loss that ran away once stays flagged."""
    from pgdat.training.health import run_flags

    slow = "clean train accuracy stayed at chance: at most 11.9% over the last 3 epoch(s)"
    late = "clean train accuracy stayed at chance: at most 10.1% over the last 3 epoch(s)"
    boom = "training loss diverged: epoch 2 loss 40, more than 4 x 2.3"
    assert run_flags([{"health_flags": []}, {"health_flags": [slow]}, {"health_flags": []}]) == []
    assert run_flags([{"health_flags": [slow]}, {"health_flags": [late]}]) == [late]
    assert run_flags([{"health_flags": [boom]}, {"health_flags": []}]) == [boom]
    assert run_flags([]) == []
