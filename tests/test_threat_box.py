"""The image box of the threat model: [0,1] by default (behaviour unchanged), or none for data outside [0,1] by
construction (unclipped injected features), where attacks are held to the eps-ball only; its config resolution
(attack.box auto | unit | none) and a training run on unclipped injected data."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from pgdat.attacks import fgsm, pgd
from pgdat.config import AttackConfig, load_config
from pgdat.errors import PgdatError
from pgdat.eval import evaluate
from pgdat.methods import StepContext, craft
from pgdat.threat import ThreatModel, resolve_box
from pgdat.training import Trainer
from pgdat.training.validate import validate_config

EPS = 0.1


def _linf(a, b):
    return (a - b).flatten(1).abs().amax(1)


def _out_of_box(x):
    """The fixture batch stretched to [-0.2, 1.2]: a third of the range lies outside [0,1]."""
    return x * 1.4 - 0.2


def test_threat_model_box_none_only_projects_onto_the_ball():
    x = torch.tensor([[-0.3, 0.5, 1.2]])
    delta = torch.tensor([[0.5, -0.05, 0.3]])
    unit, free = ThreatModel("linf", EPS), ThreatModel("linf", EPS, None)
    assert torch.allclose(free.project(x, delta), torch.tensor([[0.1, -0.05, 0.1]]))
    assert torch.allclose(unit.project(x, delta), torch.tensor([[0.3, -0.05, -0.2]]))  # box clamp moves > eps
    assert torch.equal(free.clamp_box(x + delta), x + delta)
    for bad in ((1.0, 0.0), (0.0, float("inf"))):
        with pytest.raises(PgdatError, match="box must be"):
            ThreatModel("linf", EPS, bad)


def test_default_box_is_the_usual_pgd(tiny_model, tiny_batch):
    """With the [0,1] box (default), PGD is the textbook loop: sign step, eps clip, [0,1] clamp."""
    x, y = tiny_batch
    ref = x.clone()
    for _ in range(3):
        ref.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(tiny_model(ref), y, reduction="sum"), ref)
        ref = (x + (ref.detach() + 0.04 * g.sign() - x).clamp(-EPS, EPS)).clamp(0, 1)
    out = pgd(tiny_model, x, y, eps=EPS, step_size=0.04, steps=3, init="zero")
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.equal(out, pgd(tiny_model, x, y, eps=EPS, step_size=0.04, steps=3, init="zero", box=(0.0, 1.0)))


@pytest.mark.parametrize("attack", ["pgd", "fgsm"])
def test_attacks_without_box_stay_in_the_ball_and_leave_the_unit_box(tiny_model, tiny_batch, attack):
    x, y = tiny_batch
    xo = _out_of_box(x)
    gen = torch.Generator().manual_seed(0)
    if attack == "pgd":
        adv = pgd(tiny_model, xo, y, eps=EPS, step_size=0.03, steps=5, box=None, generator=gen)
    else:
        adv = fgsm(tiny_model, xo, y, eps=EPS, box=None)
    assert _linf(adv, xo).max() <= EPS + 1e-6
    assert (adv < 0).any() and (adv > 1).any()
    with torch.no_grad():
        assert F.cross_entropy(tiny_model(adv), y) > F.cross_entropy(tiny_model(xo), y)
    with pytest.raises(PgdatError, match=r"attack.box=none"):
        pgd(tiny_model, xo, y, eps=EPS, step_size=0.03, steps=5)  # the default box refuses such data


def test_evaluate_with_box_none_accepts_data_outside_unit_box(tiny_model, tiny_batch):
    x, y = tiny_batch
    xo = _out_of_box(x)
    with pytest.raises(PgdatError, match=r"must lie in \[0,1\].*box=None"):
        evaluate(tiny_model, xo, y, attacks="clean,pgd-5", eps=EPS)
    res = evaluate(tiny_model, xo, y, attacks="clean,pgd-5", eps=0.3, box=None)
    assert res.box is None and res.to_dict()["box"] is None
    assert 0 <= res.robust_accuracy < res.accuracy["clean"]
    unit = evaluate(tiny_model, x, y, attacks="clean,pgd-5", eps=EPS)
    assert unit.box == (0.0, 1.0) and unit.to_dict()["box"] == [0.0, 1.0]
    with pytest.raises(PgdatError, match="AutoAttack clamps images to"):
        evaluate(tiny_model, xo, y, attacks="clean,apgd-ce", eps=EPS, box=None)


def test_training_craft_honours_attack_box(tiny_model, tiny_batch):
    x, y = tiny_batch
    xo = _out_of_box(x)
    attack = AttackConfig(eps=EPS, step_size=0.03, steps=5, box="none")
    adv = craft(StepContext(attack=attack, attack_model=tiny_model, generator=torch.Generator().manual_seed(0)), xo, y)
    assert _linf(adv, xo).max() <= EPS + 1e-6 and ((adv < 0) | (adv > 1)).any()
    default = StepContext(attack=AttackConfig(eps=EPS, step_size=0.03, steps=5), attack_model=tiny_model)
    assert craft(default, x, y).min() >= 0  # auto outside a trainer: the [0,1] box


def test_resolve_box():
    assert resolve_box("auto", True) == "unit" and resolve_box("auto", False) == "none"
    assert resolve_box("none", True) == "none" and resolve_box("unit", True) == "unit"
    with pytest.raises(PgdatError, match="clip_injected"):
        resolve_box("unit", False)
    with pytest.raises(PgdatError, match="valid boxes"):
        resolve_box("clip", True)


# one cheap epoch: 64 training images, PGD-AT with 2 steps, PGD-2 per-epoch and final evaluation on 32 images
CHEAP = ["data.n_train=64", "data.batch_size=32", "data.val_size=32", "eval.attack=pgd-2", "eval.n_test=32",
         "eval.final_attacks=clean,pgd-2", "eval.n_final=32", "train.epochs=1", "attack.eps=0.2",
         "attack.step_size=0.1"]


def _inject(clip: bool) -> str:
    return f"data.transforms=[{{name: inject_features, beta: 60, clip_injected: {str(clip).lower()}}}]"


def test_trainer_on_unclipped_injected_data_trains_and_evaluates_without_box(tmp_path, tiny_overrides):
    cfg = load_config("default", tiny_overrides + CHEAP + [_inject(False)])
    trainer = Trainer(cfg, tmp_path / "run", callbacks=[])
    assert not trainer.data.info.in_unit_box and trainer.box is None and trainer.header["attack_box"] == "none"
    assert trainer.data.test.x.min() < 0  # the data really lies outside [0,1]
    summary = trainer.fit()
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    acc = final["last"]["accuracy"]
    assert 0 <= acc["pgd-2"] <= acc["clean"] <= 1 and summary["best_epoch"] == 1
    row = trainer.history[0]
    assert 0 <= row["test_robust_acc"] <= row["test_clean_acc"] <= 1
    with pytest.raises(PgdatError, match="attack.box=unit"):
        Trainer(load_config("default", tiny_overrides + CHEAP + [_inject(False), "attack.box=unit"]),
                tmp_path / "unit", callbacks=[])


def test_clipped_injected_data_keeps_the_unit_box(tmp_path, tiny_overrides):
    trainer = Trainer(load_config("default", tiny_overrides + CHEAP + [_inject(True)]), tmp_path / "r", callbacks=[])
    assert trainer.data.info.in_unit_box and trainer.box == (0.0, 1.0) and trainer.header["attack_box"] == "unit"
    assert trainer.data.test.x.min() >= 0 and trainer.data.test.x.max() <= 1
    with pytest.raises(PgdatError, match="attack.box: unknown value 'clip'; valid: auto, none, unit"):
        validate_config(load_config("default", tiny_overrides + ["attack.box=clip"]))
