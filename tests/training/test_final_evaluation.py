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


def test_autoattack_on_data_outside_the_unit_box_is_refused_before_training(tmp_path, tiny_overrides):
    import pytest

    from pgdat.errors import PgdatError

    unclipped = "data.transforms=[{name: inject_features, beta: 8, clip_injected: false}]"
    over = tiny_overrides + ["data.name=mnist5k", unclipped, "eval.final_attacks=clean,pgd-5,apgd-ce"]
    with pytest.raises(PgdatError, match=r"eval.final_attacks runs apgd-ce, but the data lie outside \[0,1\]"):
        Trainer(load_config("default", over), tmp_path / "run", callbacks=[])
    assert not (tmp_path / "run" / "init.pt").exists()  # refused before anything was written
    clipped = "data.transforms=[{name: inject_features, beta: 8, clip_injected: true}]"
    Trainer(load_config("default", tiny_overrides + [clipped, "eval.final_attacks=clean,apgd-ce"]), tmp_path / "ok",
            callbacks=[])  # in [0,1]: AutoAttack can judge
