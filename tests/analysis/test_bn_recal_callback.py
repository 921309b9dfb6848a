"""The bn_recalibrate callback (reading R3 of the NTK-AT notes): best.pt/last.pt re-estimated after training and
reported next to the unrecalibrated results in final.json."""

from __future__ import annotations

import json

import pytest
import torch

from pgdat.analysis.bn_recalibrate import recal_batches, recalibrate_bn
from pgdat.checkpoint import load_checkpoint, load_model
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.training.bn_recal_callback import BNRecalibrate

QUICK = ["model.name=resnet18", "model.kwargs={width: 2}", "data.n_train=96", "data.val_size=32",
         "data.batch_size=32", "attack.steps=1", "attack.step_size=0.1", "eval.attack=clean", "eval.n_test=32",
         "eval.final_attacks=clean,pgd-2", "eval.n_final=32", "train.epochs=1", "train.progress=false",
         "train.deterministic=true", "train.channels_last=false"]
# channels_last off: on CPU (torch 2.13) a width-2 resnet18 on 1-channel images corrupts the heap in backward


def test_callback_writes_recalibrated_checkpoints_and_final_entries(tmp_path):
    from pgdat.training import Trainer

    cfg = load_config("default", QUICK + ["train.callbacks=[{name: bn_recalibrate, source: mixed, n: 64}]"])
    trainer = Trainer(cfg, tmp_path, callbacks=[])
    summary = trainer.fit()
    final = json.loads((tmp_path / "final.json").read_text())
    for which in ("best", "last"):
        entry = final[f"{which}_recal"]
        assert entry == summary[f"{which}_recal"]
        assert entry["bn_recalibration"]["source"] == "mixed" and entry["bn_recalibration"]["batch_size"] == 32
        assert entry["bn_recalibration"]["attack"]["steps"] == 1 and set(entry["accuracy"]) == {"clean", "pgd-2"}
    assert "last" in final and "robust_accuracy" in final["last"]  # the unrecalibrated results are kept
    recal = load_checkpoint(tmp_path / "last_recal.pt")
    assert recal["bn_recalibration"]["n"] == 64
    # the same recalibration done by hand on last.pt gives the saved statistics; they differ from last.pt's
    model = load_model(tmp_path / "last.pt")
    original = model.net.bn1.running_var.clone()
    batches = recal_batches(trainer.data.train, 64, 32, seed=0)
    recalibrate_bn(model, batches, source="mixed", attack=recal["bn_recalibration"]["attack"], seed=0)
    torch.testing.assert_close(recal["model"]["net.bn1.running_var"], model.net.bn1.running_var)
    assert not torch.allclose(original, model.net.bn1.running_var)
    assert int(recal["model"]["net.bn1.num_batches_tracked"]) == 2


def test_recal_batches_are_full_seeded_and_without_replacement():
    from types import SimpleNamespace

    split = SimpleNamespace(x=torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), y=torch.arange(10))
    batches = recal_batches(split, 9, 4, seed=3)
    assert [len(y) for _, y in batches] == [4, 4]
    ys = torch.cat([y for _, y in batches])
    assert len(set(ys.tolist())) == 8 and torch.equal(ys, torch.cat([y for _, y in recal_batches(split, 9, 4,
                                                                                                   seed=3)]))
    assert [len(y) for _, y in recal_batches(split, 3, 4)] == [3]


@pytest.mark.parametrize(("kw", "pattern"), [({"source": "test"}, "clean, adv, mixed"), ({"batch_size": 1}, "n >= 2")])
def test_bad_options(kw, pattern):
    with pytest.raises(PgdatError, match=pattern):
        BNRecalibrate(**kw)
