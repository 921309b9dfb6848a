"""Resume tells one story: a schedule-changing setting is refused unless asked for as an extension, which config.yaml,
metrics.jsonl and final.json then all record; resuming a finished run says where its results are and changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from pgdat.cli.main import main
from pgdat.config import load_config
from pgdat.training.schedules import lr_at
from tests.conftest import TINY, snapshot
from tests.conftest import cli_sets as sets

SMALL = [*TINY, "data.n_train=128", "data.val_size=50", "eval.n_test=50", "eval.n_final=20",
         "eval.final_attacks=clean", "train.epochs=1", "optim.schedule=piecewise", "optim.milestones=[0.5, 0.75]"]




@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *sets(SMALL), "--out", str(run)]) == 0
    return run


def test_resuming_a_finished_run_says_where_its_results_are_and_changes_nothing(finished_run, tmp_path, capsys):
    run = shutil.copytree(finished_run, tmp_path / "run")
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{run} is finished (1 epoch): its results are in {run / 'final.json'}" in out
    assert "--extend-epochs N" in out
    assert snapshot(run) == before


def test_changing_train_epochs_on_resume_is_refused_and_changes_nothing(finished_run, tmp_path, capsys):
    run = shutil.copytree(finished_run, tmp_path / "run")
    before = snapshot(run)
    assert main(["train", "--resume", str(run), "--set", "train.epochs=3"]) == 2
    assert "train.epochs changed" in capsys.readouterr().err
    assert snapshot(run) == before


def test_extend_epochs_is_recorded_and_config_metrics_final_agree(finished_run, tmp_path, capsys):
    run = shutil.copytree(finished_run, tmp_path / "run")
    first_final = (run / "final.json").read_bytes()
    assert main(["train", "--resume", str(run), "--extend-epochs", "2"]) == 0
    record = {"at_epoch": 1, "from": 1, "to": 3}
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["epochs"] == 3 and config["train"]["extensions"] == [record]
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    header, rows = lines[0], lines[1:]
    assert header["extensions"] == [record] and [r["epoch"] for r in rows] == [1, 2, 3]
    assert "schedule_epochs" not in rows[0] and [r["schedule_epochs"] for r in rows[1:]] == [3, 3]
    final = json.loads((run / "final.json").read_text())
    assert final["epochs"] == 3
    assert (run / "final.epoch1.json").read_bytes() == first_final  # the 1-epoch result kept, renamed
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 3 and last["config"]["train"]["extensions"] == [record]
    # the lr each epoch logged (its last step's) follows the schedule in force: 1 epoch for epoch 1, 3 after
    optim = load_config("default", SMALL).optim
    assert rows[0]["lr"] == pytest.approx(lr_at(optim, 1.0, 1))
    assert [r["lr"] for r in rows[1:]] == pytest.approx([lr_at(optim, 2.0, 3), lr_at(optim, 3.0, 3)])
    assert rows[1]["lr"] != lr_at(optim, 2.0, 1)  # not the old schedule continued
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0  # finished again, now at 3 epochs
    assert "is finished (3 epochs)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,error", [
    (["--extend-epochs", "2"], "--extend-epochs 2 extends a run being resumed: add --resume RUN_DIR"),
    (["--resume", "runs/x", "--extend-epochs", "-1"], "--extend-epochs must be >= 1 (got -1), e.g. --extend-epochs 10"),
    (["--resume", "runs/x", "--overwrite"], "--overwrite starts a new run (moving an old one aside); it cannot go"),
])
def test_flags_that_do_not_fit_together_are_refused(capsys, argv, error):
    assert main(["train", *argv]) == 2
    assert error in capsys.readouterr().err


def test_hand_edited_extensions_are_refused(tmp_path):
    from pgdat.errors import PgdatError
    from pgdat.training.validate import validate_config

    bad = load_config("default", ["train.epochs=5", "train.extensions=[{at_epoch: 4, from: 3, to: 5}]"])
    with pytest.raises(PgdatError, match=r"train.extensions\[0\]"):
        validate_config(bad)
    off = load_config("default", ["train.epochs=6", "train.extensions=[{at_epoch: 3, from: 3, to: 5}]"])
    with pytest.raises(PgdatError, match=r"train.epochs: 6 disagrees with train.extensions"):
        validate_config(off)
