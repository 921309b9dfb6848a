"""The end-of-run evaluation: best.pt and last.pt, evaluated once when they hold the same weights."""

from __future__ import annotations

import copy
import json

import torch

import pgdat.training.evaluation as evaluation
from pgdat.config import load_config
from pgdat.training import Trainer
from pgdat.training.evaluation import _same_weights
from tests.conftest import TinyNet


def test_best_equal_to_last_is_evaluated_once_and_reported_for_both(tmp_path, tiny_overrides, monkeypatch):
    calls = []
    real = evaluation.evaluate_final
    monkeypatch.setattr(evaluation, "evaluate_final", lambda *a, **k: calls.append(a[-1]) or real(*a, **k))
    cfg = load_config("default", tiny_overrides + ["train.epochs=1"])  # one epoch: best.pt is last.pt
    Trainer(cfg, tmp_path, callbacks=[]).fit()
    final = json.loads((tmp_path / "final.json").read_text())
    assert calls == ["best"]
    assert final["last"]["same_weights_as"] == "best"
    assert {k: v for k, v in final["last"].items() if k != "same_weights_as"} == final["best"]


def test_same_weights_tells_models_apart_by_any_parameter_or_buffer():
    a = TinyNet()
    b = copy.deepcopy(a)
    assert _same_weights(a, b)
    with torch.no_grad():
        b.fc.bias[0] += 1e-6
    assert not _same_weights(a, b)
    c = copy.deepcopy(a)
    c.bn.running_mean += 1.0  # a buffer, not a parameter
    assert not _same_weights(a, c)
