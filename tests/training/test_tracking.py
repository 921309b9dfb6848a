"""Tracking callbacks: TensorBoard event files read back with tensorboard's own reader, and W&B (offline by default)
through a stand-in module that records the calls (the wandb package itself is optional and not installed in CI)."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import textwrap
import types
from pathlib import Path

import pytest
import yaml

from pgdat.config import config_to_dict, load_config
from pgdat.errors import PgdatError
from pgdat.training import Trainer
from pgdat.training.callbacks import MetricsLogger
from pgdat.training.tracking import TensorBoardLogger, WandbLogger, final_table
from pgdat.training.validate import validate_config

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_events(log_dir: Path):
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def text(acc, tag: str) -> str:
    return acc.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0].decode()


def metrics_of(run: Path) -> list[dict]:
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()[1:]]


class FakeWandb(types.ModuleType):
    """Records wandb.init's keyword arguments and every run.log / summary / finish call."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
        self.util = types.SimpleNamespace(generate_id=lambda: "abc123")
        self.inits: list[dict] = []
        self.logs: list[tuple[int, dict]] = []
        self.summary: dict = {}
        self.finished = 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self
        return types.SimpleNamespace(log=lambda values, step: fake.logs.append((step, dict(values))),
                                     summary=self.summary, finish=lambda: setattr(fake, "finished", fake.finished + 1))


@pytest.mark.slow
def test_tensorboard_and_wandb_log_what_the_run_logged(tmp_path, tiny_overrides, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    trackers = "train.callbacks=[{name: tensorboard, every_steps: 2}, {name: wandb, every_steps: 3}]"
    cfg = load_config("default", [*tiny_overrides, "train.epochs=2", trackers])
    run = tmp_path / "run"
    summary = Trainer(cfg, run, callbacks=[MetricsLogger()]).fit()
    rows = metrics_of(run)
    acc = read_events(run / "tensorboard")
    for key in ("train_loss", "lr", "val_robust_acc", "test_clean_acc"):
        assert scalars(acc, f"epoch/{key}") == pytest.approx({m["epoch"]: m[key] for m in rows}, rel=1e-6)
    steps_per_epoch = 384 // 64
    assert sorted(scalars(acc, "step/loss")) == list(range(2, 2 * steps_per_epoch + 1, 2))
    assert yaml.safe_load(textwrap.dedent(text(acc, "config"))) == config_to_dict(cfg)
    assert scalars(acc, "final/best_clean") == pytest.approx({2: summary["best"]["accuracy"]["clean"]})
    assert f"{100 * summary['last']['accuracy']['pgd-5']:.2f}" in text(acc, "final")
    # wandb: offline unless asked, the run's config, the same epoch values, steps never going back
    (init,) = fake.inits
    assert init["mode"] == "offline" and init["config"]["method"] == config_to_dict(cfg)["method"]
    epoch_logs = [v for _, v in fake.logs if "epoch/train_loss" in v]
    assert [v["epoch/train_loss"] for v in epoch_logs] == pytest.approx([m["train_loss"] for m in rows])
    assert [s for s, v in fake.logs if "step/loss" in v] == list(range(3, 2 * steps_per_epoch + 1, 3))
    steps = [s for s, _ in fake.logs]
    assert steps == sorted(steps)
    assert fake.summary["final/last_clean"] == pytest.approx(summary["last"]["accuracy"]["clean"])
    assert fake.finished == 1 and (run / "wandb_id").read_text() == "abc123"


@pytest.mark.slow
def test_tensorboard_backfills_epochs_a_kill_kept_out_of_the_event_files(tmp_path, tiny_overrides):
    over = [*tiny_overrides, "train.callbacks=[{name: tensorboard, every_steps: 0}]"]
    run = tmp_path / "run"
    Trainer(load_config("default", [*over, "train.epochs=1"]), run, callbacks=[MetricsLogger()]).fit()
    for f in (run / "tensorboard").iterdir():  # as if killed after last.pt but before the events were written
        f.unlink()
    Trainer(load_config("default", [*over, "train.epochs=1"]), run, callbacks=[MetricsLogger()], resume=True,
            extend_epochs=1).fit()  # one more epoch, as --extend-epochs 1
    rows = metrics_of(run)
    acc = read_events(run / "tensorboard")
    assert scalars(acc, "epoch/train_loss") == pytest.approx({m["epoch"]: m["train_loss"] for m in rows}, rel=1e-6)
    assert "step/loss" not in acc.Tags()["scalars"]  # every_steps 0: epochs only
    assert (run / "tensorboard" / ".logged_epoch").read_text() == "2"


def test_final_table_holds_both_checkpoints_per_attack():
    summary = {"n": 100, "eps": 0.3, "norm": "linf", "best_epoch": 3, "epochs": 5,
               "best": {"accuracy": {"clean": 0.91, "pgd-20": 0.456}},
               "last": {"accuracy": {"clean": 0.9, "pgd-20": 0.4}}}
    table, values = final_table(summary)
    assert "| best (epoch 3) | 91.00 | 45.60 |" in table and "| last (epoch 5) | 90.00 | 40.00 |" in table
    assert values == {"final/best_clean": 0.91, "final/best_pgd-20": 0.456, "final/last_clean": 0.9,
                      "final/last_pgd-20": 0.4}


def test_missing_package_and_bad_options_are_clear_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # importlib then finds no wandb, installed or not
    with pytest.raises(PgdatError, match=r"callback 'wandb' needs the wandb package: pip install 'pgdat\[wandb\]'"):
        validate_config(load_config("default", ["train.callbacks=[{name: wandb}]"]))
    with pytest.raises(PgdatError, match="callback 'wandb' option mode must be one of offline, online, disabled"):
        WandbLogger(mode="cloud")
    with pytest.raises(PgdatError, match="callback 'tensorboard' option every_steps must be an integer >= 0"):
        TensorBoardLogger(every_steps=-1)
    with pytest.raises(PgdatError, match="has no option step"):
        validate_config(load_config("default", ["train.callbacks=[{name: tensorboard, step: 5}]"]))
