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
