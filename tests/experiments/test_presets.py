"""Every experiment's presets (cpu and paper) hold valid configs, checked without training.

Each experiment's ``run`` goes through :func:`pgdat.experiments.common.train_run`, which loads and validates the
config of every run; here the Trainer is replaced by a stand-in that records the config and trains nothing, and the
analyses and plots after training are stubbed. So a preset with a bad key, value or combination fails in seconds,
instead of minutes into a real reproduction.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import pgdat.experiments.common as common
from pgdat.config import Config
from pgdat.experiments import EXPERIMENTS, load_experiments
from pgdat.training.validate import validate_config

load_experiments()

# names each experiment module calls after training (analyses, plots, summaries): stubbed with these return values
AFTER_TRAINING: dict[str, dict[str, Any]] = {
    "co-features": {"summarize_run": {}, "plot_heatmaps": None},
    "criticality": {"load_subset": (None, None, None), "plot_heatmap": None,
                    "checkpoint_criticality": {k: {"layers": [], "mean": 0.0, "base_top1": 0.0, "stages": {}}
                                               for k in ("clean", "adv")},
                    "format_table": ""},
    "deat": {"_plot": None},
    "induced": {"analyze_run": [], "plot_induced": None},
    "memorization": {"_plot": None},
    "ntk": {"analyze_runs": {}},
    "reat": {"_plot": None},
    "robust-overfitting": {"robust_overfitting": defaultdict(float), "plot_robust_overfitting": None},
}


class PlannedRun:
    """Stands in for :class:`pgdat.training.Trainer`: validates and records the config, trains nothing."""

    planned: list[tuple[Path, Config]] = []

    def __init__(self, cfg: Config, out: str | Path, *, resume: bool = False, callbacks: list | None = None) -> None:
        validate_config(cfg)  # what the Trainer does first
        self.cfg, self.out, self.epoch, self.stop_reason = cfg, Path(out), 0, None
        self.out.mkdir(parents=True, exist_ok=True)
        self.history = [defaultdict(float, epoch=e) for e in range(1, cfg.train.epochs + 1)]
        PlannedRun.planned.append((self.out, cfg))

    def start(self) -> PlannedRun:  # the Trainer's I/O step (nothing to load here)
        return self

    def fit(self) -> None:
        pass


def test_every_experiment_is_covered():
    assert set(AFTER_TRAINING) == set(EXPERIMENTS)


@pytest.mark.parametrize(("name", "preset"), [(n, p) for n in sorted(AFTER_TRAINING)
                                               for p in (EXPERIMENTS[n].default_seeds if n in EXPERIMENTS else ())])
def test_preset_configs_validate_without_training(name, preset, tmp_path, monkeypatch):
    run = EXPERIMENTS[name].run
    module = __import__(run.__module__, fromlist=["run"])
    monkeypatch.setattr(common, "Trainer", PlannedRun)
    monkeypatch.setattr(PlannedRun, "planned", [])
    monkeypatch.setattr(module, "write_summary", lambda *a, **k: None)
    for attr, value in AFTER_TRAINING[name].items():
        assert hasattr(module, attr), f"{run.__module__}.{attr} is gone: update AFTER_TRAINING"
        monkeypatch.setattr(module, attr, lambda *a, _v=value, **k: _v)
    run(preset, tmp_path)
    dirs = [out for out, _ in PlannedRun.planned]
    assert dirs, f"{name} --preset {preset} planned no training run"
    assert len(set(dirs)) == len(dirs), f"{name} --preset {preset}: two runs share a folder: {dirs}"
    assert all(out.is_relative_to(tmp_path) for out in dirs)
    for _, cfg in PlannedRun.planned:
        assert cfg.train.epochs >= 1 and cfg.eval.every == 1  # experiments read per-epoch curves
