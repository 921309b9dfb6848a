"""``pgdat repro ntk`` and ``pgdat analyze ntk`` on a tiny preset."""

from __future__ import annotations

import json

import pytest

from pgdat.experiments import ntk as exp

TINY = ["data.n_train=128", "data.val_size=32", "train.epochs=2", "attack.steps=1", "attack.eps_warmup_epochs=0",
        "optim.schedule=constant", "eval.attack=pgd-1", "eval.n_test=32", "eval.final_attacks=clean",
        "eval.n_final=32", "train.progress=false"]


@pytest.mark.slow
def test_repro_ntk_tiny_preset_and_cli(tmp_path, monkeypatch):
    monkeypatch.setitem(exp.PRESETS, "cpu", {**exp.PRESETS["cpu"], "base": TINY, "probe": 6, "kind": "logit_sum"})
    rows = exp.run("cpu", tmp_path)
    assert [(r["method"], r["epoch"]) for r in rows] == [(m, e) for m in ("standard", "pgd_at") for e in (0, 1, 2)]
    assert rows[0]["kernel_distance_to_prev"] is None
    assert all(0 < r["kernel_distance_to_prev"] < 1 and r["top_eigenvalue"] > 0 for r in rows if r["epoch"] > 0)
    assert (tmp_path / "ntk.png").stat().st_size > 0
    from pgdat.cli.main import main

    assert main(["analyze", "ntk", str(tmp_path / "runs" / "pgd_at"), "--out", str(tmp_path / "cli")]) == 0
    saved = json.loads((tmp_path / "cli" / "ntk.json").read_text())
    assert [r["epoch"] for r in saved["runs"]["pgd_at"]] == [0, 1, 2]
