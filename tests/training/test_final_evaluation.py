"""The end-of-run evaluation: best.pt and last.pt, evaluated once when they hold the same weights."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

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


def test_final_evaluation_runs_in_the_references_batches_on_the_loaded_model(tmp_path, monkeypatch):
    """The final evaluation hands evaluate() batches of eval.final_batch_size and the model as given (never
    converted to channels_last): with the reference's batches pgdat's cascade equals the reference's plain run point
    by point (tests/eval/test_cascade.py), so the run reports what the reference leaves on its points."""
    seen = {}

    def spy(model, x, y, **kw):
        seen.update(kw, model=model, strides=[p.stride() for p in model.parameters()])
        return "result"

    monkeypatch.setattr(evaluation, "evaluate", spy)
    cfg = load_config("default", ["eval.final_batch_size=7", "train.progress=false"])
    run = SimpleNamespace(cfg=cfg, dist=SimpleNamespace(is_main=True), box=(0.0, 1.0), out=tmp_path)
    model = TinyNet()
    strides = [p.stride() for p in model.parameters()]
    assert evaluation.evaluate_final(run, model, torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)) == "result"
    assert seen["batch_size"] == 7 and seen["batch_option"].name == "eval.final_batch_size"
    assert seen["attacks"] == cfg.eval.final_attacks
    assert seen["model"] is model and seen["strides"] == strides  # no memory-format conversion


def test_final_evaluation_batches_default_to_the_references():
    from pgdat.attacks.autoattack import REFERENCE_BATCH

    assert load_config("default").eval.final_batch_size == REFERENCE_BATCH == 250
