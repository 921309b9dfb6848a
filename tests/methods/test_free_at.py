"""Free-AT (Shafahi et al.): the carried perturbation (eps-ball, box, the FGSM step from the same backward pass),
the trainer's minibatch replay (m optimizer steps per batch, lr per step), robustness gained at equal optimizer
steps, and bit-exact resume with the perturbation in the checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from pgdat.attacks import pgd
from pgdat.checkpoint import save_checkpoint
from pgdat.config import AttackConfig, load_config
from pgdat.errors import PgdatError
from pgdat.integrity import INTEGRITY_KEY
from pgdat.methods import StepContext, build_method
from pgdat.methods.free_at import FREE_DELTA
from pgdat.training import Trainer
from pgdat.training.callbacks import Callback, MetricsLogger
from pgdat.training.trainer import replayed
from tests.conftest import TinyNet, make_tiny_data

EPS = 0.1


def _ctx(model, eps=EPS):
    return StepContext(attack=AttackConfig(eps=eps, step_size=eps / 4, steps=5), attack_model=model,
                       generator=torch.Generator().manual_seed(0))


def _replay(fn, model, x, y, ctx, opt=None):
    """One trainer step by hand: loss, backward, optimizer step (if any), then the method's after-step hooks."""
    ctx.after_step = []
    out = fn(model, x, y, ctx)
    model.zero_grad()
    out["loss"].backward()
    if opt is not None:
        opt.step()
    for f in ctx.after_step:
        f()
    return out


def test_delta_is_an_fgsm_step_of_the_same_backward_and_stays_in_ball_and_box(tiny_model, tiny_batch):
    x, y = tiny_batch
    model = tiny_model.train()
    fn, ctx = build_method("free_at", {"m": 4, "box": "project"}), _ctx(model)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)  # the first replay's input gradient (delta = 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    _replay(fn, model, x, y, ctx, opt)
    delta = ctx.state[FREE_DELTA]
    assert torch.allclose(delta, (x + EPS * g.sign()).clamp(0, 1) - x, atol=1e-6)
    for k in range(6):  # replays, then other batches: delta carried, always inside ball ∩ box of the current batch
        xb = x if k < 3 else make_tiny_data(64, seed=10 + k)[0]
        out = _replay(fn, model, xb, y, ctx, opt)
        d = ctx.state[FREE_DELTA]
        assert d.abs().max() <= EPS + 1e-6 and (xb + d).min() >= 0 and (xb + d).max() <= 1
        assert torch.isfinite(out["loss"])
    assert (d.abs() > 0.99 * EPS).float().mean() > 0.3  # it accumulates full steps, not a fading start


def test_default_box_handling_is_the_references_clamp(tiny_model, tiny_batch):
    """mahyarnajibi/FreeAdversarialTraining main_free.py, transcribed: the forward pass sees clamp(x + noise, 0, 1);
    noise += eps * sign(d loss / d noise); noise.clamp_(-eps, eps): no projection into the box, so a saturated pixel
    gets no gradient and keeps its noise."""
    x, y = tiny_batch
    fn, ctx = build_method("free_at", {}), _ctx(tiny_model)
    noise = torch.zeros_like(x)
    for _ in range(4):  # replays of a frozen model: the perturbation sequence alone
        n = noise.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(tiny_model((x + n).clamp(0, 1)), y), n)
        noise = (noise + EPS * g.sign()).clamp(-EPS, EPS)
        _replay(fn, tiny_model, x, y, ctx)
        assert torch.allclose(ctx.state[FREE_DELTA], noise, atol=1e-6)
    assert ((x + noise < 0) | (x + noise > 1)).any()  # the case that tells the two box handlings apart occurred


def test_adversarial_loss_rises_across_replays_of_a_frozen_model(tiny_model, tiny_batch):
    """Without parameter updates, m replays are m steps of PGD with step eps from zero: the loss climbs."""
    x, y = tiny_batch
    fn, ctx = build_method("free_at", {}), _ctx(tiny_model, eps=0.15)
    losses = [_replay(fn, tiny_model, x, y, ctx)["loss"].item() for _ in range(4)]
    assert losses[0] == pytest.approx(F.cross_entropy(tiny_model(x), y).item(), rel=1e-5)  # starts at delta = 0
    assert losses[1] > 2 * losses[0] and losses[3] >= losses[1]


def test_short_batch_uses_first_rows_and_new_shape_restarts(tiny_model, tiny_batch):
    x, y = tiny_batch
    fn, ctx = build_method("free_at", {}), _ctx(tiny_model)
    _replay(fn, tiny_model, x, y, ctx)
    full = ctx.state[FREE_DELTA].clone()
    _replay(fn, tiny_model, x[:10], y[:10], ctx)
    after = ctx.state[FREE_DELTA]
    assert after.shape == full.shape and torch.equal(after[10:], full[10:]) and not torch.equal(after[:10], full[:10])
    ctx.state[FREE_DELTA] = torch.ones(64, 1, 4, 4)  # another image shape: restarts from zero, no error
    _replay(fn, tiny_model, x, y, ctx)
    assert ctx.state[FREE_DELTA].shape == x.shape and ctx.state[FREE_DELTA].abs().max() <= EPS + 1e-6


def test_replays_option_is_validated():
    assert build_method("free_at", {}).replays == 8 and build_method("free_at", {"m": 3}).replays == 3
    assert build_method("fgsm_at", {}).replays == 1
    for bad in (0, 2.5, True):
        with pytest.raises(PgdatError, match="option m .*integer >= 1"):
            build_method("free_at", {"m": bad})


def test_replayed_progress_without_replay_is_bit_identical_to_one_step_per_batch():
    for n in (1, 3, 7, 10, 391):
        for e in (0, 3, 29):
            steps = list(replayed(range(n), 1, e, n))
            assert [(i, p) for i, p, _ in steps] == [(i, e + (i + 1) / n) for i in range(n)]
    steps = list(replayed("ab", 4, 2, 2))  # 2 batches x 4 replays: 8 steps, progress evenly spaced up to 3.0
    assert [b for *_, b in steps] == list("aaaabbbb") and [i for i, *_ in steps] == list(range(8))
    assert [p for _, p, _ in steps] == pytest.approx([2 + k / 8 for k in range(1, 9)]) and steps[-1][1] == 3.0


def _train(name, params, epochs, seed=0):
    """TinyNet trained on the 8x8 fixture data (256 images, batch 32) by hand, replaying as the trainer does."""
    torch.manual_seed(seed)
    x, y = make_tiny_data(256, seed=0)
    model = TinyNet().train()
    fn = build_method(name, params)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ctx = StepContext(attack=AttackConfig(eps=0.2, step_size=0.05, steps=5, bn_mode="train"), attack_model=model,
                      generator=torch.Generator().manual_seed(0))
    steps = 0
    for e in range(epochs):
        perm = torch.randperm(256, generator=torch.Generator().manual_seed(e))
        for i in range(0, 256, 32):
            for _ in range(fn.replays):
                _replay(fn, model, x[perm[i:i + 32]], y[perm[i:i + 32]], ctx, opt)
                steps += 1
    return model.eval(), steps


def test_free_at_gains_robustness_over_standard_training_at_equal_optimizer_steps():
    xt, yt = make_tiny_data(256, seed=1)
    accs = {}
    for name, params, epochs in (("standard", {}, 8), ("free_at", {"m": 4}, 2)):  # 64 optimizer steps each
        model, steps = _train(name, params, epochs)
        assert steps == 64
        adv = pgd(model, xt, yt, eps=0.2, step_size=0.05, steps=10, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            accs[name] = (model(xt).argmax(1).eq(yt).float().mean().item(),
                          model(adv).argmax(1).eq(yt).float().mean().item())
    assert accs["free_at"][0] > 0.95 and accs["standard"][0] > 0.95
    assert accs["free_at"][1] > accs["standard"][1] + 0.1, accs  # PGD-10 accuracy (measured: 0.83 vs 0.58)


class _Count(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_step_end(self, run, out) -> None:
        self.lrs.append(run.optimizer.param_groups[0]["lr"])


class _StopAfterFirstEpoch(Callback):
    def on_epoch_end(self, run, metrics) -> None:
        if run.epoch == 1:
            raise KeyboardInterrupt  # after last.pt of epoch 1 is written, as a kill would leave it


# small and cheap: 64 training images (2 batches of 32), clean per-epoch/final evaluation, a token CO monitor
FAST = ["method.name=free_at", "method.params={m: 2}", "data.n_train=64", "data.batch_size=32", "data.val_size=32",
        "eval.attack=clean",
        "eval.n_test=32", "eval.final_attacks=clean", "eval.n_final=32", "optim.schedule=cyclic",
        "train.callbacks=[{name: co_monitor, n_train: 8, n_val: 8, attack: pgd-1}]"]


def _free_cfg(tiny_overrides, *extra):
    return load_config("default", tiny_overrides + FAST + list(extra))


def test_trainer_takes_m_optimizer_steps_per_batch_with_lr_per_step(tmp_path, tiny_overrides):
    cfg = _free_cfg(tiny_overrides, "train.epochs=1")
    count = _Count()
    trainer = Trainer(cfg, tmp_path / "run", callbacks=[MetricsLogger(), count])
    trainer.fit()
    assert len(count.lrs) == 2 * 2  # 2 batches x m = 2
    # the cyclic schedule advances on every replay (4 optimizer steps, peak at half), not once per batch
    assert count.lrs == pytest.approx([cfg.optim.lr * (1 - abs(2 * k / 4 - 1)) for k in range(1, 5)])
    header = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert header["replays"] == 2


def test_free_at_resume_equals_uninterrupted_and_needs_the_saved_delta(tmp_path, tiny_overrides):
    cfg = _free_cfg(tiny_overrides, "train.epochs=2")
    Trainer(cfg, tmp_path / "ref", callbacks=[]).fit()
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "cut", callbacks=[_StopAfterFirstEpoch()]).fit()
    saved = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["method_state"][FREE_DELTA].abs().max() > 0
    Trainer(cfg, tmp_path / "cut", resume=True, callbacks=[]).fit()
    ref = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert all(torch.equal(ref["model"][k], cut["model"][k]) for k in ref["model"])
    assert torch.equal(ref["method_state"][FREE_DELTA], cut["method_state"][FREE_DELTA])
    strip = lambda h: [{k: v for k, v in r.items() if not k.startswith("time_")} for r in h]  # noqa: E731
    assert strip(ref["history"]) == strip(cut["history"])
    # the carried delta matters: resuming from a checkpoint without it ends elsewhere
    (tmp_path / "lost").mkdir()
    del saved["method_state"][FREE_DELTA]
    saved.pop(INTEGRITY_KEY, None)  # re-stamped for the edited content by save_checkpoint
    save_checkpoint(saved, tmp_path / "lost" / "last.pt")
    lost = Trainer(cfg, tmp_path / "lost", resume=True, callbacks=[])
    lost.fit()
    assert not all(torch.equal(ref["model"][k], lost.model.state_dict()[k].cpu()) for k in ref["model"])
