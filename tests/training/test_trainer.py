"""The trainer end to end on the embedded default: run directory, reload, every method, resume after SIGKILL."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import pgdat
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.killhook import KILL_ENV
from pgdat.methods import METHODS
from pgdat.training import Trainer


def _metrics(run: Path) -> list[dict]:
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "header"
    return lines[1:]


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


def test_run_directory_and_reload(tmp_path, tiny_overrides):
    cfg = load_config("default", tiny_overrides)
    summary = Trainer(cfg, tmp_path / "run", callbacks=None).fit()
    run = tmp_path / "run"
    for name in ("init.pt", "last.pt", "best.pt", "metrics.jsonl", "curves.png", "per_class.png", "final.json"):
        assert (run / name).is_file(), name
    header = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert {"pgdat", "torch", "git_sha", "device", "seed"} <= set(header)
    rows = _metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(0 <= r["val_robust_acc"] <= r["val_clean_acc"] <= 1 for r in rows)
    last = rows[-1]
    assert len(last["per_class_test_robust_acc"]) == 10
    # the 100 test images are class-interleaved (10 per class): the per-class mean is the overall accuracy
    assert abs(sum(last["per_class_test_robust_acc"]) / 10 - last["test_robust_acc"]) < 1e-9
    assert {"test_head_robust_acc", "test_medium_robust_acc", "test_tail_robust_acc"} <= set(last)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["config"]["train"]["epochs"] == 3
    model = pgdat.load_model(run)  # best.pt
    assert not model.training
    best = max(rows, key=lambda r: r["val_robust_acc"])
    assert summary["best_epoch"] == best["epoch"] and summary["selected_by"] == "val_robust_acc"
    x = torch.rand(4, 1, 28, 28)
    init = torch.load(run / "init.pt", weights_only=True)
    fresh = pgdat.load_model(run / "init.pt")
    assert not torch.equal(fresh(x), model(x))
    assert set(init["model"]) == set(ckpt["model"])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_one_epoch(tmp_path, tiny_overrides, method):
    cfg = load_config("default", tiny_overrides + ["train.epochs=1", f"method.name={method}", "data.n_train=128"])
    Trainer(cfg, tmp_path / method, callbacks=[]).fit()
    last = torch.load(tmp_path / method / "last.pt", weights_only=True)
    init = torch.load(tmp_path / method / "init.pt", weights_only=True)["model"]
    (row,) = last["history"]
    assert math.isfinite(row["train_loss"]) and row["train_loss"] > 0, row["train_loss"]
    assert 0 <= row["test_robust_acc"] <= 1
    # the method's loss reached the weights: every trainable tensor moved during the epoch
    params = [name for name, _ in pgdat.load_model(tmp_path / method / "init.pt").named_parameters()]
    moved = {k: not torch.equal(last["model"][k], init[k]) for k in params}
    assert moved and all(moved.values()), [k for k, m in moved.items() if not m]


def test_ema_is_evaluated_alongside(tmp_path, tiny_overrides):
    cfg = load_config("default", tiny_overrides + ["train.epochs=1", "optim.ema=0.9"])
    Trainer(cfg, tmp_path / "ema", callbacks=[]).fit()
    ckpt = torch.load(tmp_path / "ema" / "last.pt", weights_only=True)
    assert "ema_test_robust_acc" in ckpt["history"][0] and "ema" in ckpt
    # which="ema" loads the averaged weights (was: "is not None", true of any model load_model returns)
    ema = pgdat.load_model(tmp_path / "ema" / "last.pt", which="ema").state_dict()
    assert all(torch.equal(ema[k], v) for k, v in ckpt["ema"].items())
    assert any(not torch.equal(ema[k], ckpt["model"][k]) for k in ckpt["model"])


def test_eval_every_evaluates_every_nth_and_last_epoch_and_selects_among_them(tmp_path, tiny_overrides):
    cfg = load_config("default", tiny_overrides + ["eval.every=2", "data.n_train=128"])  # 3 epochs
    summary = Trainer(cfg, tmp_path / "every", callbacks=[]).fit()
    rows = torch.load(tmp_path / "every" / "last.pt", weights_only=True)["history"]
    assert [("val_robust_acc" in r, "test_robust_acc" in r) for r in rows] == [(False, False), (True, True),
                                                                             (True, True)]
    assert [r["best_epoch"] for r in rows][0] == 0  # nothing to select from before the first evaluation
    best = max(rows[1:], key=lambda r: r["val_robust_acc"])
    assert summary["best_epoch"] == best["epoch"] and summary["selected_by"] == "val_robust_acc"


def test_nonfinite_loss_stops_with_epoch_and_step(tmp_path, tiny_overrides):
    cfg = load_config("default", tiny_overrides + ["optim.lr=1e30", "optim.name=sgd"])
    with pytest.raises(PgdatError, match=r"non-finite training loss at epoch 1, step \d+"):
        Trainer(cfg, tmp_path / "nan", callbacks=[]).fit()


def _cli(args: list[str], kill_after_step: int | None = None, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV} | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    if kill_after_step is not None:
        env[KILL_ENV] = str(kill_after_step)
    return subprocess.Popen([sys.executable, "-m", "pgdat", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _steps_per_epoch(cfg, tmp: Path) -> int:
    trainer = Trainer(cfg, tmp, callbacks=[])
    return len(trainer.loader.epoch(0)) * trainer.method.replays


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path, tiny_overrides):
    # killed at exact optimizer steps by the trainer's test hook (PGDAT_TEST_KILL_AFTER_STEP), not after a sleep
    overrides = tiny_overrides + ["train.epochs=4"]
    steps = _steps_per_epoch(load_config("default", overrides), tmp_path / "probe")
    sets = [a for o in overrides for a in ("--set", o)]
    ref = _cli(["train", *sets, "--out", str(tmp_path / "ref")])
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out
    run = tmp_path / "killed"
    args = ["train", *sets, "--out", str(run)]
    # the second step of epoch 2, then the last step of epoch 3 (after its optimizer step, before its checkpoint)
    for kill_step, epoch_on_disk in ((steps + 2, 1), (3 * steps, 2)):
        proc = _cli(args, kill_after_step=kill_step)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, out
        assert torch.load(run / "last.pt", weights_only=True)["epoch"] == epoch_on_disk
        assert len(_metrics(run)) == epoch_on_disk
        args = ["train", "--resume", str(run)]
    proc = _cli(args)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert _comparable(_metrics(run)) == _comparable(_metrics(tmp_path / "ref"))
    a = torch.load(run / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    final_a = json.loads((run / "final.json").read_text())
    final_b = json.loads((tmp_path / "ref" / "final.json").read_text())
    assert final_a["best"]["accuracy"] == final_b["best"]["accuracy"]


def test_resume_refuses_changed_config(tmp_path, tiny_overrides):
    sets = [a for o in tiny_overrides + ["train.epochs=1"] for a in ("--set", o)]
    from pgdat.cli.main import main
    assert main(["train", *sets, "--out", str(tmp_path / "r")]) == 0
    assert main(["train", "--resume", str(tmp_path / "r"), "--set", "attack.eps=0.1"]) == 2
    assert main(["train", "--resume", str(tmp_path / "r"), "--set", "train.epochs=2"]) == 2  # use --extend-epochs
    assert main(["train", "--resume", str(tmp_path / "r"), "--extend-epochs", "1"]) == 0
    assert torch.load(tmp_path / "r" / "last.pt", weights_only=True)["epoch"] == 2
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2
    assert main(["train", *sets, "--out", str(tmp_path / "r")]) == 2  # refuses to overwrite a run


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path, tiny_overrides):
    sets = [a for o in tiny_overrides + ["train.epochs=2", "train.device=cpu"] for a in ("--set", o)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "pgdat", "train", *sets, "--out", str(tmp_path / "ddp")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _metrics(tmp_path / "ddp")
    assert [r["epoch"] for r in rows] == [1, 2]
    header = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[0])
    assert header["world_size"] == 2
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] or rows[-1]["val_clean_acc"] > 0.3
    assert len(list((tmp_path / "ddp").glob("*.pt"))) == 3  # init, best, last: written once, by rank 0
