"""``pgdat repro ntk`` and ``pgdat analyze ntk`` on a tiny preset."""

from __future__ import annotations

import json

import pytest

from pgdat.experiments import EXPERIMENTS
from pgdat.experiments import ntk as exp

TINY = ["data.n_train=128", "data.val_size=32", "train.epochs=2", "attack.steps=1", "attack.eps_warmup_epochs=0",
        "optim.schedule=constant", "eval.attack=pgd-1", "eval.n_test=32", "eval.final_attacks=clean",
        "eval.n_final=32", "train.progress=false"]


@pytest.mark.slow
def test_repro_ntk_tiny_preset_and_cli(tmp_path, monkeypatch):
    monkeypatch.setitem(exp.PRESETS, "cpu", {**exp.PRESETS["cpu"], "base": TINY, "probe": 6, "kind": "logit_sum"})
    rows = EXPERIMENTS["ntk"].run("cpu", tmp_path)
    assert [(r["method"], r["epoch"]) for r in rows] == [(m, e) for m in ("standard", "pgd_at") for e in (0, 1, 2)]
    assert rows[0]["kernel_distance_to_prev"] is None
    assert all(0 < r["kernel_distance_to_prev"] < 1 and r["top_eigenvalue"] > 0 for r in rows if r["epoch"] > 0)
    assert (tmp_path / "ntk.png").stat().st_size > 0
    from pgdat.cli.main import main

    assert main(["analyze", "ntk", str(tmp_path / "runs" / "pgd_at"), "--out", str(tmp_path / "cli")]) == 0
    saved = json.loads((tmp_path / "cli" / "ntk.json").read_text())
    assert [r["epoch"] for r in saved["runs"]["pgd_at"]] == [0, 1, 2]


def _snapshot_run(out, extra):
    import torch

    from pgdat.analysis.ntk import load_snapshots
    from pgdat.experiments.plan import train_plan

    base = ["data.n_train=128", "data.val_size=0", "data.batch_size=64", "method.name=standard",
            "optim.schedule=constant", "eval.attack=clean", "eval.n_test=32", "eval.final_attacks=clean",
            "eval.n_final=32", "train.progress=false", "train.deterministic=true"]
    spec = exp.snapshot_spec(out.name, "default", (*base, *extra), 0, probe=4, kind="logit_sum")
    train_plan([spec], out.parent, "test")
    snaps = load_snapshots(out)
    return [s["epoch"] for s in snaps], [s["kernel"].to(torch.float64) for s in snaps]


def test_snapshot_run_under_a_changed_preset_is_retrained_from_scratch(tmp_path):
    # a run folder holding a finished run of another config (an older preset: 2 epochs, seed 0) is not resumed
    # (the Trainer refuses) nor mixed with it: the new config trains from scratch, and the old run's NTK snapshots
    # (epoch_0 of another init, epoch_2 beyond the new run) are not read as the new run's
    import torch

    run = tmp_path / "runs" / "standard"
    _snapshot_run(run, ["train.epochs=2", "train.seed=0"])
    epochs, kernels = _snapshot_run(run, ["train.epochs=1", "train.seed=1"])
    ref_epochs, ref_kernels = _snapshot_run(tmp_path / "fresh", ["train.epochs=1", "train.seed=1"])
    assert epochs == ref_epochs == [0, 1]
    assert all(torch.allclose(a, b) for a, b in zip(kernels, ref_kernels, strict=True))
    # a finished run of the same config is reused, not retrained
    before = (run / "last.pt").stat().st_mtime_ns
    _snapshot_run(run, ["train.epochs=1", "train.seed=1"])
    assert (run / "last.pt").stat().st_mtime_ns == before
