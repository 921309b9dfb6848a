"""Up-front semantic validation of a Config: each bad value names its key and the valid range or names."""

from __future__ import annotations

import pytest

from pgdat.config import load_config
from pgdat.config.loader import RECIPES
from pgdat.config.validate import config_warnings, validate_config
from pgdat.errors import PgdatError

RECIPE_NAMES = sorted(str(p.relative_to(RECIPES).with_suffix("")) for p in RECIPES.rglob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_every_packaged_recipe_is_valid(recipe):
    cfg = load_config(recipe)
    assert validate_config(cfg) is None
    assert config_warnings(cfg) == []


BAD = [
    ("attack.eps=0", r"attack\.eps: must be a finite number in \(0\.0, inf\]"),
    ("attack.eps=-8/255", r"attack\.eps"),
    ("attack.eps=2", r"attack\.eps: .*\[0\.0, 1\.0\].*whole \[0,1\] image box"),
    ("attack.step_size=0", r"attack\.step_size"),
    ("attack.steps=0", r"attack\.steps: must be an integer >= 1"),
    ("attack.restarts=0", r"attack\.restarts"),
    ("attack.norm=l1", r"attack\.norm: unknown norm 'l1'; valid norms: l2, linf"),
    ("attack.init=gauss", r"attack\.init: unknown init 'gauss'; valid inits: normal, uniform, zero"),
    ("attack.loss=hinge", r"attack\.loss: unknown attack loss .*valid attack losses: ce"),
    ("attack.bn_mode=frozen", r"attack\.bn_mode"),
    ("method.name=pgd", r"method\.name: unknown method 'pgd'; valid methods: .*pgd_at.*trades"),
    ("model.name=resnet50", r"model\.name: unknown model 'resnet50'; valid models: .*small_cnn"),
    ("data.name=imagenet", r"data\.name: unknown dataset 'imagenet'; valid datasets: .*mnist5k"),
    ("optim.schedule=linear", r"optim\.schedule: unknown schedule .*valid schedules: .*cosine"),
    ("optim.name=rmsprop", r"optim\.name: unknown optimizer .*valid optimizers: .*adam.*sgd"),
    ("optim.lr=0", r"optim\.lr"),
    ("optim.momentum=1.5", r"optim\.momentum"),
    ("optim.ema=1", r"optim\.ema: must be 0 \(off\) or in \(0, 1\)"),
    ("optim.betas=[0.9, 1.0]", r"optim\.betas"),
    ("train.epochs=0", r"train\.epochs"),
    ("train.device=gpu", r"train\.device: 'gpu' is not a device; valid: auto, cpu, cuda"),
    ("train.precision=fp8", r"train\.precision: unknown precision 'fp8'; valid precisions: auto, bf16, fp16, fp32"),
    ("data.batch_size=0", r"data\.batch_size: must be an integer >= 1"),
    ("data.n_train=-1", r"data\.n_train"),
    ("data.augment=rotate", r"data\.augment: .*valid: .*crop_flip"),
    ("eval.attack=pgd-0", r"eval\.attack: attack 'pgd-0': steps and restarts must be >= 1"),
    ("eval.final_attacks=clean,pgdd-20", r"eval\.final_attacks: unknown attack 'pgdd'"),
    ("eval.step_size=0", r"eval\.step_size"),
    ("eval.batch_size=0", r"eval\.batch_size"),
    ("eval.every=0", r"eval\.every: must be an integer >= 1"),
    ("eval.select_by=test_robust_acc", r"eval\.select_by: .*val_clean_acc, val_robust_acc"),
    ("method.params={beta: 6.0}", r"method\.params: method 'pgd_at' has no option beta"),
]


@pytest.mark.parametrize("override,pattern", BAD, ids=[b[0] for b in BAD])
def test_bad_value_names_key_and_valid_range(override, pattern):
    cfg = load_config("default", [override])
    with pytest.raises(PgdatError, match=pattern):
        validate_config(cfg)


def test_batch_larger_than_training_set_is_refused():
    cfg = load_config("default", ["data.n_train=32", "data.batch_size=64"])
    with pytest.raises(PgdatError, match=r"data\.batch_size: 64 is larger than data\.n_train=32.*<= 32"):
        validate_config(cfg)
    assert validate_config(load_config("default", ["data.n_train=32", "data.batch_size=64",
                                                   "data.drop_last=false"])) is None


def test_standard_training_needs_no_attack_radius():
    assert validate_config(load_config("default", ["method.name=standard", "attack.eps=0"])) is None


def test_step_size_above_eps_is_a_warning_not_an_error():
    cfg = load_config("default", ["attack.eps=8/255", "attack.step_size=10/255"])
    assert validate_config(cfg) is None
    (note,) = config_warnings(cfg)
    assert "attack.step_size 0.03922 > attack.eps 0.03137 with projection" in note
    assert config_warnings(load_config("default", ["attack.eps=8/255", "attack.step_size=2/255"])) == []
