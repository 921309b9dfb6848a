"""pgd_at_switch and the attack_switch callback (T1/T2 of the NTK-AT notes), attack presets and the attack cost."""

from __future__ import annotations

import json

import pytest
import torch

from pgdat.config import load_config
from pgdat.config.schema import AttackConfig
from pgdat.errors import PgdatError
from pgdat.methods import StepContext, build_method, craft
from pgdat.methods.base import ATTACK_COST, ATTACK_OVERRIDE, ATTACK_PRESETS
from pgdat.training.attack_switch import AttackSwitch
from pgdat.training.run_view import RunView

ATTACK = AttackConfig(eps=0.1, step_size=0.025, steps=5, init="uniform", bn_mode="eval")


def _ctx(model, **kw):
    return StepContext(attack=ATTACK, attack_model=model, generator=torch.Generator().manual_seed(0), **kw)


def test_presets_set_the_attack_and_count_gradient_evaluations(tiny_model, tiny_batch):
    x, y = tiny_batch
    ctx = _ctx(tiny_model)
    assert torch.equal(craft(ctx, x, y, preset="none"), x) and ctx.state[ATTACK_COST]["grad_evals"] == 0
    expected = 0
    for name, steps in (("pgd", 5), ("pgd2", 2), ("fgsm_rs", 1), ("fgsm", 1)):
        x_adv = craft(ctx, x, y, preset=name)
        expected += len(x) * steps
        assert ctx.state[ATTACK_COST]["grad_evals"] == expected
        assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6 and not torch.equal(x_adv, x)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(tiny_model(xr), y, reduction="sum"), [xr])
    torch.testing.assert_close(craft(_ctx(tiny_model), x, y, preset="fgsm"), (x + 0.1 * g.sign()).clamp(0, 1))
    assert set(ATTACK_PRESETS) == {"pgd", "pgd2", "fgsm_rs", "fgsm", "none"}


def test_state_override_wins_over_method_overrides(tiny_model, tiny_batch):
    x, y = tiny_batch
    ctx = _ctx(tiny_model)
    ctx.state[ATTACK_OVERRIDE] = {"preset": "pgd2"}
    a = craft(ctx, x, y, steps=1, step_size=0.3, preset="fgsm")  # a single-step method under the pgd2 remedy
    b = craft(_ctx(tiny_model), x, y, preset="pgd2")
    assert torch.equal(a, b) and ctx.state[ATTACK_COST]["grad_evals"] == 2 * len(x)


def test_switch_method_follows_the_switch_epoch(tiny_model, tiny_batch):
    x, y = tiny_batch
    method = build_method("pgd_at_switch", {"before": "pgd", "after": "none"})
    ctx = _ctx(tiny_model, epoch=3)
    out = method(tiny_model, x, y, ctx)
    assert ctx.state["attack_active"] == "pgd" and ctx.state[ATTACK_COST]["grad_evals"] == 5 * len(x)
    ctx.state["attack_switch"] = {"epoch": 3}
    out = method(tiny_model, x, y, ctx)
    clean = torch.nn.functional.cross_entropy(tiny_model(x), y)
    assert ctx.state["attack_active"] == "none" and torch.allclose(out["loss"], clean)
    assert ctx.state[ATTACK_COST]["grad_evals"] == 5 * len(x)
    with pytest.raises(PgdatError, match="unknown attack preset 'pgd7'"):
        build_method("pgd_at_switch", {"after": "pgd7"})


def _fake_trainer(epochs=10, callbacks=()):
    """A run's view at its start (no model needed by the switch rules)."""
    return RunView(cfg=load_config("default", [f"train.epochs={epochs}"]), out=None, model=None,
                   callbacks=callbacks)


def test_velocity_rule_needs_patience_consecutive_measurements():
    from pgdat.training.ntk_snapshot import NTKSnapshot

    cb = AttackSwitch(rule="ntk_velocity", tau=0.1, patience=2)
    trainer = _fake_trainer(callbacks=[NTKSnapshot(probe=4), cb])
    logged = []
    for v in (None, 0.5, 0.05, 0.5, 0.05, None, 0.04, 0.01):  # None: no snapshot that epoch
        cb.on_epoch_start(trainer)
        trainer.progress.epoch += 1  # the trainer's part: the epoch is complete
        m = {"ntk_velocity": v}
        cb.on_epoch_metrics(trainer, m)
        logged.append(m["attack_switch_epoch"])
    assert logged == [None] * 6 + [7, 7]  # below tau at epochs 5 and 7 (6 had no measurement): cheap from 7 on
    late = AttackSwitch(rule="ntk_velocity")
    with pytest.raises(PgdatError, match="before"):
        late.on_epoch_start(_fake_trainer(callbacks=[late, NTKSnapshot(probe=4)]))


def test_epoch_rule_and_bad_options():
    trainer = _fake_trainer(10)
    cb = AttackSwitch(at=0.35)
    cb.on_epoch_start(trainer)
    assert trainer.state["attack_switch"]["epoch"] == 4
    cb2, trainer2 = AttackSwitch(epoch=7, at=0.1), _fake_trainer(10)
    cb2.on_epoch_start(trainer2)
    assert trainer2.state["attack_switch"]["epoch"] == 7
    for kw in ({"rule": "loss"}, {"at": 1.5}, {"tau": 0}, {"patience": 0}):
        with pytest.raises(PgdatError):
            AttackSwitch(**kw)


QUICK = ["data.n_train=128", "data.val_size=64", "data.batch_size=64", "attack.steps=2", "attack.step_size=0.1",
         "eval.attack=clean", "eval.n_test=64", "eval.final_attacks=clean", "eval.n_final=64", "train.epochs=3",
         "train.progress=false", "train.deterministic=true", "method.name=pgd_at_switch"]


def test_trainer_logs_active_attack_and_cumulative_cost(tmp_path):
    from pgdat.checkpoint import load_checkpoint
    from pgdat.training import Trainer
    from pgdat.training.callbacks import MetricsLogger

    Trainer(load_config("default", QUICK), tmp_path, callbacks=[MetricsLogger()]).fit()  # default: at=0.3 -> 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()[1:]]
    assert [r["attack_active"] for r in rows] == ["pgd", "fgsm_rs", "fgsm_rs"]
    assert [r["attack_switch_epoch"] for r in rows] == [1, 1, 1]
    assert [r["attack_grad_evals"] for r in rows] == [256, 384, 512]  # 2 batches of 64: PGD-2 then one step
    state = load_checkpoint(tmp_path / "last.pt")["method_state"]
    assert state["attack_switch"]["epoch"] == 1 and state["attack_cost"]["grad_evals"] == 512


def test_trainer_velocity_switch_with_ntk_snapshots(tmp_path):
    from pgdat.training import Trainer
    from pgdat.training.callbacks import MetricsLogger

    callbacks = ("train.callbacks=[{name: ntk_snapshot, probe: 8, kind: logit_sum, save_kernel: false}, "
                 "{name: attack_switch, rule: ntk_velocity, tau: 1.0, patience: 1}]")
    Trainer(load_config("default", QUICK + ["method.params={after: none}", callbacks]), tmp_path,
            callbacks=[MetricsLogger()]).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()[1:]]
    assert 0 <= rows[0]["ntk_velocity"] < 1.0  # a kernel distance is at most 1, so tau = 1 switches at once
    assert [r["attack_active"] for r in rows] == ["pgd", "none", "none"]
    assert [r["attack_grad_evals"] for r in rows] == [256, 256, 256]
