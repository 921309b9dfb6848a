"""Up-front semantic validation of a Config: each bad value names its key and the valid range or names."""

from __future__ import annotations

import pytest

from pgdat.config import load_config
from pgdat.config.loader import RECIPES
from pgdat.errors import PgdatError
from pgdat.training.validate import config_warnings, validate_config

RECIPE_NAMES = sorted(str(p.relative_to(RECIPES).with_suffix("")) for p in RECIPES.rglob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_every_packaged_recipe_is_valid(recipe, tmp_path):
    cfg = load_config(recipe)
    if cfg.data.extra:  # it names an extra-data file the user supplies: stand in one of the dataset's image size
        import numpy as np

        from pgdat.data import dataset_info

        c, h, w = dataset_info(cfg.data.name).shape
        np.savez(tmp_path / "extra.npz", image=np.zeros((4, h, w, c), np.uint8), label=np.zeros(4, np.int64))
        cfg = load_config(recipe, [f"data.extra.path={tmp_path / 'extra.npz'}"])
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
    # unvalidated before: accepted here, then failing (or silently misbehaving) once data and model were built
    ("optim.peak=1", r"optim\.peak: must be a finite number in \(0\.0, 1\.0\)"),
    ("optim.peak=0", r"optim\.peak"),
    ("optim.peak=nan", r"optim\.peak"),
    ("optim.milestones=[0.5, nan]", r"optim\.milestones: .*milestones\[1\]=nan"),
    ("optim.milestones=[-0.5]", r"optim\.milestones"),
    ("train.callbacks=[{name: gradnorm}]",
     r"train\.callbacks: unknown callback 'gradnorm'; valid callbacks: .*grad_norm"),
    ("train.callbacks=[{every: 2}]", r"train\.callbacks: each entry needs a name"),
    ("train.callbacks=[{name: train_eval, size: 100}]",
     r"train\.callbacks: callback 'train_eval' has no option size; valid options: n; "
     r"e\.g\. train\.callbacks=\[\{name: train_eval, n: "),
    ("data.transforms=[{name: labelnoise}]", r"data\.transforms: unknown data transform 'labelnoise'.*label_noise"),
    ("data.transforms=[{name: label_noise, rat: 0.2}]",
     r"data\.transforms: data transform 'label_noise' has no option rat; valid options: rate, noise_seed; "
     r"e\.g\. data\.transforms=\[\{name: label_noise, rate: 1\.0\}\]"),
    ("model.kwargs={widht: 16}", r"model\.kwargs: model 'small_cnn' has no option widht; valid options: "
                                 r"input_size.*; e\.g\. model\.kwargs=\{input_size: "),
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


def test_valid_options_of_callbacks_transforms_and_models_pass():
    cfg = load_config("default", ["train.callbacks=[{name: train_eval, n: 100}, {name: grad_norm}]",
                                  "data.transforms=[{name: label_noise, rate: 0.2}]", "model.kwargs={input_size: 28}"])
    assert validate_config(cfg) is None


def test_deat_and_cyclic_settings_in_range_pass():
    assert validate_config(load_config("default", ["optim.name=deat", "optim.momentum=0.9", "optim.deat_k=2",
                                                   "optim.deat_beta=0.5"])) is None
    assert validate_config(load_config("default", ["optim.schedule=cyclic", "optim.peak=0.4"])) is None
    # multistep milestones are epochs and may lie past the end of training (the TRADES recipe stops at 76 of 75/90/100)
    assert validate_config(load_config("default", ["optim.schedule=multistep", "optim.milestones=[5, 20]"])) is None


BAD_COMBINED = [
    (["optim.schedule=piecewise", "optim.milestones=[100, 150]"],
     r"optim\.milestones: .*fractions of training in \[0, 1\].*optim\.schedule=multistep"),
    (["optim.name=deat", "optim.momentum=1"], r"optim\.momentum: optim\.name=deat needs .*\[0, 1\)"),
    (["optim.name=deat", "optim.deat_k=nan"], r"optim\.deat_k"),
    (["optim.name=deat", "optim.deat_k=-1"], r"optim\.deat_k: must be a finite number in \[0\.0, inf\]"),
    (["optim.name=deat", "optim.deat_beta=1"], r"optim\.deat_beta: .*\[0, 1\)"),
]


@pytest.mark.parametrize("overrides,pattern", BAD_COMBINED, ids=[" ".join(b[0]) for b in BAD_COMBINED])
def test_bad_combination_names_key_and_valid_range(overrides, pattern):
    with pytest.raises(PgdatError, match=pattern):
        validate_config(load_config("default", overrides))


def test_warmups_as_long_as_training_are_reported():
    # the default recipe ramps eps over 3 epochs: a 2-epoch quick run never trains at the eps it is evaluated at
    cfg = load_config("default", ["train.epochs=2"])
    assert validate_config(cfg) is None
    (note,) = config_warnings(cfg)
    assert "attack.eps_warmup_epochs 3 >= train.epochs 2" in note
    (note,) = config_warnings(load_config("default", ["optim.warmup_epochs=10", "attack.eps_warmup_epochs=0"]))
    assert "optim.warmup_epochs 10 >= train.epochs 10" in note
    assert config_warnings(load_config("default", ["train.epochs=2", "method.name=standard"])) == []


@pytest.fixture
def probe_method():
    """Registers ``facts_probe``, a clean-data loss whose facts say what the test asks, and removes it after."""
    from pgdat.methods import METHODS, MethodFacts, register_method

    def register(**facts):
        def facts_probe(model, x, y, ctx):
            return {"loss": model(x).sum()}

        register_method("facts_probe", MethodFacts(paper="a test probe", reference="", passes=lambda b: 1,
                                                   passes_rule="1", **facts))(facts_probe)

    yield register
    METHODS.pop("facts_probe", None)


def test_validation_reads_attacks_and_step_class_from_the_method_facts(probe_method):
    """No table of method names: a method declaring attacks=False needs no radius, one declaring large steps gets no
    step-size warning, and the same method declaring small steps does."""
    probe_method(attacks=False, step="none")
    validate_config(load_config("default", ["method.name=facts_probe", "attack.eps=0"]))
    from pgdat.methods import METHODS

    METHODS.pop("facts_probe")
    probe_method(attacks=True, step="large")
    big_step = ["method.name=facts_probe", "attack.eps=0.1", "attack.step_size=0.15"]
    with pytest.raises(PgdatError, match="attack.eps: must be a finite number in \\(0"):
        validate_config(load_config("default", ["method.name=facts_probe", "attack.eps=0"]))
    assert config_warnings(load_config("default", big_step)) == []
    METHODS.pop("facts_probe")
    probe_method(attacks=True, step="small")
    (note,) = config_warnings(load_config("default", big_step))
    assert "attack.step_size 0.15 > attack.eps 0.1" in note


@pytest.mark.parametrize(("method", "params"), [("trades", {}), ("trades_te", {}), ("pgd_at_te", {}),
                                                ("awp", {"base": "trades"})])
def test_methods_with_one_attack_start_refuse_restarts(method, params):
    """Their facts say one start: attack.restarts=2 fails at validation, not with a shape error at the first step."""
    sets = [f"method.name={method}", f"method.params={params}".replace("'", ""), "attack.restarts=2"]
    with pytest.raises(PgdatError, match=rf"attack\.restarts: method '{method}' needs one attack start .*set "
                                         r"attack\.restarts=1 \(got 2\)"):
        validate_config(load_config("default", sets))
    assert validate_config(load_config("default", [*sets[:2], "attack.restarts=1"])) is None


def test_methods_with_hard_label_attacks_take_restarts():
    for method, params in (("pgd_at", "{}"), ("mart", "{}"), ("awp", "{base: pgd_at}")):
        assert validate_config(load_config("default", [f"method.name={method}", f"method.params={params}",
                                                       "attack.restarts=2"])) is None
