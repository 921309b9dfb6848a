"""model.input_norm (reading R4 of the NTK-AT notes): dataset | none | custom normalisation inside the model, saved
with the run and restored from checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from pgdat.checkpoint import load_checkpoint, load_model
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.models.normalize import INPUT_NORMS, resolve_input_norm
from pgdat.training.validate import validate_config

DATA_MEAN, DATA_STD = (0.13,), (0.31,)


def test_resolve_input_norm_per_setting():
    assert set(INPUT_NORMS) == {"dataset", "none", "custom"}
    assert resolve_input_norm("dataset", DATA_MEAN, DATA_STD) == ([0.13], [0.31])
    assert resolve_input_norm("none", DATA_MEAN, DATA_STD) == (None, None)
    assert resolve_input_norm("custom", DATA_MEAN, DATA_STD, (0.5,), (0.25,)) == ([0.5], [0.25])


@pytest.mark.parametrize(("name", "mean", "std", "pattern"), [
    ("custom", (), (), "needs model.norm_mean and model.norm_std"),
    ("custom", (0.5, 0.5), (0.2, 0.2), "one value per input channel \\(1\\)"),
    ("dataset", (0.5,), (0.2,), "only with model.input_norm=custom"),
    ("nope", (), (), "valid input normalisations: custom, dataset, none"),
])
def test_resolve_input_norm_errors(name, mean, std, pattern):
    with pytest.raises(PgdatError, match=pattern):
        resolve_input_norm(name, DATA_MEAN, DATA_STD, mean, std)


@pytest.mark.parametrize(("overrides", "pattern"), [
    (["model.input_norm=pixel"], "model.input_norm: unknown input normalisation 'pixel'"),
    (["model.input_norm=custom"], "model.norm_mean: model.input_norm=custom needs"),
    (["model.input_norm=custom", "model.norm_mean=[0.5]", "model.norm_std=[0]"], "std must be > 0"),
    (["model.norm_mean=[0.5]", "model.norm_std=[0.2]"], "only with model.input_norm=custom"),
])
def test_config_validation_names_the_key(overrides, pattern):
    with pytest.raises(PgdatError, match=pattern):
        validate_config(load_config("default", overrides))


QUICK = ["data.n_train=128", "data.val_size=64", "data.batch_size=64", "attack.steps=1", "attack.step_size=0.1",
         "eval.attack=clean", "eval.n_test=64", "eval.final_attacks=clean", "eval.n_final=64", "train.epochs=1",
         "train.progress=false", "train.deterministic=true"]


@pytest.mark.parametrize(("setting", "mean", "std"), [
    (["model.input_norm=none"], 0.0, 1.0),
    (["model.input_norm=custom", "model.norm_mean=[0.25]", "model.norm_std=[0.5]"], 0.25, 0.5),
])
def test_trained_run_records_and_restores_the_normalisation(tmp_path, setting, mean, std):
    from pgdat.training import Trainer
    from pgdat.training.callbacks import MetricsLogger

    cfg = load_config("default", QUICK + setting)
    trainer = Trainer(cfg, tmp_path, callbacks=[MetricsLogger()])
    trainer.fit()
    ckpt = load_checkpoint(tmp_path / "last.pt")
    name = cfg.model.input_norm
    assert ckpt["model_config"]["input_norm"] == name and ckpt["config"]["model"]["input_norm"] == name
    header = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert header["input_norm"] == name
    model = load_model(tmp_path / "last.pt")
    assert model.normalize.mean.item() == pytest.approx(mean) and model.normalize.std.item() == pytest.approx(std)
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model(x), trainer.model.eval()(x))
    dataset_norm = load_config("default", QUICK)
    assert Trainer(dataset_norm, tmp_path / "d", callbacks=[]).model.normalize.std.item() != pytest.approx(std)
