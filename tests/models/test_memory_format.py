"""channels_last is skipped on CPU only for the narrow convolutions that crash oneDNN's channels_last backward."""

from __future__ import annotations

import torch

from pgdat.models import create_model
from pgdat.models.memory_format import channels_last_ok


def test_narrow_resnets_are_kept_out_of_channels_last_on_cpu_only():
    narrow = create_model("resnet18", 10, in_channels=1, width=4)
    wide = create_model("resnet18", 10, in_channels=1, width=8)
    assert not channels_last_ok(narrow, torch.device("cpu"))
    assert channels_last_ok(wide, torch.device("cpu"))  # a 1-channel stem alone is fine
    assert channels_last_ok(create_model("small_cnn", 10, in_channels=1), "cpu")
    assert channels_last_ok(narrow, torch.device("cuda"))  # the guard is for the CPU backend only


def test_trainer_runs_a_narrow_resnet_with_channels_last_requested(tmp_path, tiny_overrides, capsys):
    from pgdat.config import load_config
    from pgdat.training import Trainer

    cfg = load_config("default", tiny_overrides + ["model.name=resnet18", "model.kwargs={width: 4}",
                                                   "train.channels_last=true", "train.epochs=1"])
    trainer = Trainer(cfg, tmp_path)
    assert not trainer.channels_last
    assert "channels_last ignored" in capsys.readouterr().out
    trainer.fit()  # without the guard this aborts the interpreter (heap corruption in the conv backward)
    assert (tmp_path / "last.pt").is_file()
