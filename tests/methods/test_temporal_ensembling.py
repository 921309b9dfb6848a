"""Temporal ensembling: ramp, targets, penalty inside the attack, state in checkpoints across resume."""

import math

import pytest
import torch

from pgdat.config import AttackConfig, load_config
from pgdat.methods import StepContext, build_method
from pgdat.methods.temporal_ensembling import te_penalty, te_ramp
from pgdat.training import Trainer
from tests.conftest import Interrupted, interrupt_after_epoch


def test_ramp_shape():
    assert te_ramp(89, 90, 150) == 0.0
    assert te_ramp(90, 90, 150) == pytest.approx(math.exp(-5))
    assert te_ramp(120, 90, 150) == pytest.approx(math.exp(-5 * 0.25))
    assert te_ramp(150, 90, 150) == 1.0 and te_ramp(200, 90, 150) == 1.0


def test_penalty_is_zero_at_the_targets():
    logits = torch.randn(5, 4)
    assert torch.allclose(te_penalty(logits, torch.softmax(logits, 1)), torch.zeros(5), atol=1e-7)
    assert (te_penalty(logits, torch.full((5, 4), 0.25)) >= 0).all()


@pytest.mark.parametrize("name", ["pgd_at_te", "trades_te"])
def test_active_te_updates_targets_and_penalises(tiny_model, tiny_batch, name):
    x, y = tiny_batch
    ctx = StepContext(attack=AttackConfig(eps=0.1, step_size=0.025, steps=3), attack_model=tiny_model,
                      generator=torch.Generator().manual_seed(0), epoch=0, index=torch.arange(64) * 2,
                      n_index=200, num_classes=4)
    fn = build_method(name, {"start_epoch": 1, "end_epoch": 3, "w_max": 10.0})
    out = fn(tiny_model, x, y, ctx)
    s = ctx.state["te_targets"]
    assert s.shape == (200, 4)
    assert (s[::2][:64].sum(1) > 0).all() and (s[1::2] == 0).all()  # only the batch's rows were updated
    assert torch.isfinite(out["loss"]) and out["te_penalty"] > 0
    out["loss"].backward()
    assert all(p.grad is not None for p in tiny_model.parameters())


def test_te_state_survives_resume(tmp_path, tiny_overrides):
    """Epoch 1, interrupted, + resume for epoch 2 == 2 epochs straight, with the ensemble targets restored from the
    checkpoint."""
    sets = tiny_overrides + ["method.name=pgd_at_te", "method.params={start_epoch: 1, end_epoch: 3, w_max: 30}",
                             "optim.schedule=constant",
                             "train.epochs=2"]
    full = Trainer(load_config("default", sets), tmp_path / "full", callbacks=[])
    full.fit()
    first = Trainer(load_config("default", sets), tmp_path / "cut", callbacks=[interrupt_after_epoch(1)])
    with pytest.raises(Interrupted):
        first.fit()
    saved = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["method_state"]["te_targets"]
    assert saved.abs().sum() > 0
    resumed = Trainer(load_config("default", sets), tmp_path / "cut", resume=True, callbacks=[]).start()
    assert torch.equal(resumed.method_state["te_targets"], saved)
    resumed.fit()
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert torch.equal(a["method_state"]["te_targets"], b["method_state"]["te_targets"])
    strip = lambda h: [{k: v for k, v in r.items() if not k.startswith("time_")} for r in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])


def test_trades_te_inner_objective_is_the_references(tiny_model, tiny_batch, monkeypatch):
    """dongyp13/memorization-AT loss.py TRADES_TE, from epoch es on, ascends
    (beta / B) * KL_sum(p_clean || p(x')) + w * mean_{b,c}(softmax f(x') - s_hat)^2; pgdat's per-example inner loss
    summed over the batch must be B times that (same ascent direction for sign and L2-normalised steps)."""
    import pgdat.methods.temporal_ensembling as te

    captured = {}

    def fake_craft(ctx, x, targets, *, loss, init):
        captured.update(loss=loss, targets=targets)
        return x

    monkeypatch.setattr(te, "craft", fake_craft)
    x, y = tiny_batch
    ctx = StepContext(attack=AttackConfig(eps=0.1, step_size=0.025, steps=3), attack_model=tiny_model, epoch=4,
                      index=torch.arange(64), n_index=64, num_classes=4)
    beta, w_max = 6.0, 300.0
    build_method("trades_te", {"beta": beta, "w_max": w_max, "start_epoch": 2, "end_epoch": 9})(tiny_model, x, y, ctx)
    w = w_max * te_ramp(5, 2, 9)
    targets = captured["targets"]
    p_clean, s_hat = targets[:, :4], targets[:, 4:]
    logits_adv = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    log_q = torch.log_softmax(logits_adv, 1)
    kl_sum = (p_clean * (p_clean.log() - log_q)).sum()  # nn.KLDivLoss(size_average=False)
    reference = (beta / 64) * kl_sum + w * ((log_q.exp() - s_hat) ** 2).mean()
    assert captured["loss"](logits_adv, targets).sum().item() == pytest.approx(64 * reference.item(), rel=1e-5)


def test_robust_overfitting_paper_preset_pairs_differ_only_by_te():
    """dongyp13/memorization-AT crafts PGD_TE's and its PGD-AT baseline's attacks with model.eval(): both runs of
    the paper preset must use eval-mode BatchNorm while attacking, and share every other attack setting."""
    from pgdat.config.loader import config_to_dict
    from pgdat.experiments import robust_overfitting as ro

    recipe, overrides, _, _ = ro.PRESETS["paper"]
    assert load_config(recipe, overrides).attack.bn_mode == "eval"  # the preset's shared settings
    runs = ro.planned_runs("paper")
    assert [m for _, m, _, _, _ in runs] == ["pgd_at", "pgd_at_te"]
    cfgs = [load_config(recipe, overrides) for _, _, _, recipe, overrides in runs]
    assert [c.attack.bn_mode for c in cfgs] == ["eval", "eval"]
    a, b = (config_to_dict(c) for c in cfgs)
    assert a["attack"] == b["attack"] and a["optim"] == b["optim"] and a["data"] == b["data"]
