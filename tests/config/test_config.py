import dataclasses
from pathlib import Path

import pytest
import yaml

from pgdat.config import Config, apply_overrides, config_from_dict, config_to_dict, load_config
from pgdat.config.loader import RECIPES
from pgdat.errors import PgdatError


def test_defaults_and_overrides_with_fractions():
    cfg = load_config(None, ["train.epochs=5", "attack.eps=8/255", "model.kwargs={width: 16}",
                             "optim.milestones=[0.4, 0.8]", "eval.step_size=null"])
    assert cfg.train.epochs == 5 and cfg.attack.eps == pytest.approx(8 / 255)
    assert cfg.model.kwargs == {"width": 16} and cfg.optim.milestones == (0.4, 0.8) and cfg.eval.step_size is None


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().train.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("override,match", [
    ("train.epoch=3", "unknown config key 'train.epoch'; valid keys in train: epochs"),
    ("trian.epochs=3", "unknown config key 'trian'"),
    ("train.epochs=three", "train.epochs must be an integer"),
    ("attack.eps=big", "attack.eps must be a number"),
    ("train.channels_last=maybe", "must be true or false"),
    ("epochs", "must look like section.key=value"),
])
def test_bad_keys_and_values_are_named(override, match):
    with pytest.raises(PgdatError, match=match):
        load_config(None, [override])


def test_roundtrip_through_yaml(tmp_path: Path):
    cfg = load_config("cifar10/trades_wrn34", ["train.epochs=2"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    assert load_config(str(path)) == cfg


@pytest.mark.parametrize("recipe", sorted(str(p.relative_to(RECIPES).with_suffix("")) for p in RECIPES.rglob("*.yaml")))
def test_every_packaged_recipe_loads(recipe):
    cfg = load_config(recipe)
    assert cfg.name and cfg.train.epochs > 0


def test_unknown_recipe_lists_known():
    with pytest.raises(PgdatError, match="cifar10/pgd_at_preact18"):
        load_config("cifar10/nonexistent")


def test_apply_overrides_creates_sections():
    assert apply_overrides({}, ["method.params.beta=3"]) == {"method": {"params": {"beta": 3}}}
    assert config_from_dict({"method": {"name": "trades", "params": {"beta": 3}}}).method.params == {"beta": 3}


def test_exponent_floats_in_option_mappings_are_numbers(tmp_path: Path):
    # PyYAML (YAML 1.1) reads 5e-3 and 1.0e3 as strings; typed fields go through parse_number, option mappings did not
    cfg = load_config(None, ["method.name=awp", "method.params.gamma=5e-3", "model.kwargs={width: 16, p: [1e-3]}",
                             "train.callbacks=[{name: spectrum_monitor, z: 1.0e1}]"])
    assert cfg.method.params == {"gamma": 0.005} and isinstance(cfg.method.params["gamma"], float)
    assert cfg.model.kwargs == {"width": 16, "p": [0.001]} and cfg.train.callbacks[0]["z"] == 10.0
    path = tmp_path / "r.yaml"
    path.write_text("method: {name: trades, params: {beta: 6e0}}\n"
                    "data: {transforms: [{name: label_noise, rate: 2e-1}]}\n")
    cfg = load_config(str(path))
    assert cfg.method.params == {"beta": 6.0} and cfg.data.transforms == ({"name": "label_noise", "rate": 0.2},)
    assert load_config(None, ["method.params.variant=paper_intent"]).method.params == {"variant": "paper_intent"}


def test_duplicate_recipe_keys_are_refused(tmp_path: Path):
    path = tmp_path / "dup.yaml"
    path.write_text("attack: {eps: 8/255}\ntrain: {epochs: 5}\nattack: {steps: 7}\n")
    with pytest.raises(PgdatError, match=r"key 'attack' appears twice"):
        load_config(str(path))
    path.write_text("train: {epochs: 5, seed: 1, epochs: 7}\n")
    with pytest.raises(PgdatError, match=r"key 'epochs' appears twice"):
        load_config(str(path))


def test_recipe_that_is_not_a_mapping_is_named_with_overrides(tmp_path: Path):
    path = tmp_path / "list.yaml"
    path.write_text("- train\n- epochs\n")
    with pytest.raises(PgdatError, match=r"must be a mapping"):
        load_config(str(path), ["train.epochs=3"])


def test_roundtrip_of_every_recipe_with_options(tmp_path: Path):
    from pgdat.training import write_config

    for recipe in sorted(str(p.relative_to(RECIPES).with_suffix("")) for p in RECIPES.rglob("*.yaml")):
        cfg = load_config(recipe, ["method.params.gamma=5e-3", "data.transforms=[{name: label_noise, rate: 1e-1}]",
                                   "name=yes", "data.root=/tmp/x", "eval.step_size=2/255"])
        write_config(cfg, tmp_path / "config.yaml")
        assert load_config(str(tmp_path / "config.yaml")) == cfg, recipe


@pytest.mark.parametrize("override,match", [
    ("train.device=cuda:", r"train\.device must be text, not a mapping or list \(got \{'cuda': None\}\)"),
    ("eval.final_attacks=[clean, pgd-20]", r"eval\.final_attacks must be text, .*\(got \['clean', 'pgd-20'\]\)"),
])
def test_text_fields_refuse_yaml_mappings_and_lists(override, match):
    with pytest.raises(PgdatError, match=match):
        load_config(None, [override])


def test_section_mapping_override_merges_into_the_recipe():
    # eval={every: 2} used to replace the whole eval section, silently dropping the recipe's n_test and batch_size
    cfg = load_config("default", ["eval={every: 2, n_test: 64}"])
    assert (cfg.eval.every, cfg.eval.n_test, cfg.eval.batch_size) == (2, 64, 128)
    assert cfg.eval.final_attacks == load_config("default").eval.final_attacks
    # option mappings are still replaced as a whole
    cfg = load_config("cifar10/awp_preact18", ["method.params={gamma: 0.02}"])
    assert cfg.method.params == {"gamma": 0.02}
