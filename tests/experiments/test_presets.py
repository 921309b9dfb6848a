"""Every experiment's presets hold valid runs, checked without training.

Each experiment declares its training runs as data (``plan(preset, seed) -> list[RunSpec]``), so every run of every
preset is resolved to the exact config the Trainer gets and validated here, with the callbacks it would build, in
seconds instead of minutes into a real reproduction. ``test_plan_matches_the_code_before_plans`` pins those configs to
the ones the experiments built before they were declared as data (``data/planned_runs.json``, captured at 21eff13).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from pgdat.config import config_to_dict, load_config
from pgdat.errors import PgdatError
from pgdat.experiments import EXPERIMENTS, RunSpec
from pgdat.experiments.plan import check_plan, spec_callbacks, spec_config
from pgdat.training.callback_list import build_callbacks
from pgdat.training.validate import validate_config

CASES = [(name, preset) for name in sorted(EXPERIMENTS) for preset in EXPERIMENTS[name].default_seeds]
BEFORE = json.loads((Path(__file__).parent / "data" / "planned_runs.json").read_text())["experiments"]


@pytest.mark.parametrize(("name", "preset"), CASES)
def test_preset_runs_validate_without_training(name, preset):
    exp = EXPERIMENTS[name]
    for seed in (0, 1):
        specs = exp.planned(preset, seed)
        assert specs, f"{name} --preset {preset} plans no training run"
        assert all(s.seed == seed for s in specs)
        for spec in specs:
            cfg = spec_config(spec)
            validate_config(cfg)  # what the Trainer does first
            build_callbacks([dict(c) for c in cfg.train.callbacks])  # unknown callback options fail here
            spec_callbacks(spec)  # and the spec's own (e.g. NTK snapshots)
            assert cfg.train.epochs >= 1 and cfg.eval.every == 1  # experiments read per-epoch curves
            assert cfg.train.seed == spec_config(RunSpec(spec.name, spec.recipe, spec.overrides)).train.seed + seed


def _describe(callbacks: list[Any] | None) -> list[dict[str, Any]] | None:
    """The Trainer's callbacks as the fixture recorded them: class names, and an NTK snapshot's settings."""
    if callbacks is None:
        return None
    out = []
    for c in callbacks:
        d = {"class": type(c).__name__}
        if d["class"] == "NTKSnapshot":
            d |= {"every": c.every, "probe": c.n, "kind": c.kind, "seed": c.seed, "save_kernel": c.save_kernel,
                  "adv": c.adv, "bn_mode": c.bn_mode}
        out.append(d)
    return out


RECORDED = [(n, p) for n, presets in BEFORE.items() for p in presets]


def test_every_recorded_experiment_and_preset_still_exists():
    assert len(BEFORE) == 8 and set(RECORDED) <= set(CASES)  # experiments added later need no record


@pytest.mark.parametrize(("name", "preset"), RECORDED)
def test_plan_matches_the_code_before_plans(name, preset):
    """Same run folders, in the same order, each reaching the Trainer with the same resolved config and callbacks
    as the code that built and trained its runs in a loop."""
    for seed in (0, 1):
        before = BEFORE[name][preset][str(seed)]
        specs = EXPERIMENTS[name].planned(preset, seed)
        assert [PurePosixPath(s.name).as_posix() for s in specs] == [r["dir"] for r in before]
        for spec, rec in zip(specs, before, strict=True):
            want = config_to_dict(load_config(rec["recipe"], rec["overrides"]))
            assert config_to_dict(spec_config(spec)) == want, f"{name} {preset} seed {seed}: {spec.name}"
            assert _describe(spec_callbacks(spec)) == rec["callbacks"], f"{name} {preset}: {spec.name}"


@pytest.mark.parametrize(("names", "message"), [
    (["a", "a"], "two runs share the folder 'a'"), (["../a"], "run name '../a' must be a relative folder"),
    (["/tmp/a"], "run name '/tmp/a' must be"), ([""], "run name '' must be")])
def test_bad_plans_fail_before_training(names, message):
    with pytest.raises(PgdatError, match=message):
        check_plan([RunSpec(n, "default", ()) for n in names], "experiment x, preset cpu")


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(PgdatError, match="--preset for deat must be one of cpu, paper .got 'gpu'.*--preset cpu"):
        EXPERIMENTS["deat"].planned("gpu")
