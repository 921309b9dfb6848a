"""``pgdat repro criticality`` machinery on a tiny preset (seconds)."""

from __future__ import annotations

import json

from pgdat.experiments import EXPERIMENTS
from pgdat.experiments import criticality as exp

TINY = ["data.n_train=128", "data.val_size=32", "train.epochs=1", "attack.steps=1", "attack.eps_warmup_epochs=0",
        "eval.attack=pgd-1", "eval.n_test=32", "eval.final_attacks=clean", "eval.n_final=32", "train.progress=false"]


def test_repro_criticality_tiny_preset(tmp_path, monkeypatch):
    tiny = {**exp.PRESETS["cpu"], "base": TINY, "n": 48, "trials": 1, "adv_steps": 2,
            "runs": [("standard", 0.0), ("pgd_at", 0.1)]}
    monkeypatch.setitem(exp.PRESETS, "cpu", tiny)
    rows = EXPERIMENTS["criticality"].run("cpu", tmp_path)
    assert {(r["method"], r["eps"]) for r in rows} == {("standard", 0.0), ("pgd_at", 0.1)}
    assert len(rows) == 2 * 4  # small_cnn: conv1, conv2, linear1, linear2
    assert [r["depth_index"] for r in rows[:4]] == [0, 1, 2, 3]
    assert all(0 <= r["criticality"] <= 100 and 0 <= r["criticality_adv"] <= 100 for r in rows)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["meta"]["per_run"]) == {"standard", "pgd_at_eps0.1"}
    assert (tmp_path / "heatmap_clean.png").is_file() and (tmp_path / "summary.md").is_file()
    cfg = (tmp_path / "runs" / "pgd_at_eps0.1" / "config.yaml").read_text()
    assert "eps: 0.1" in cfg and "pgd_at" in cfg
