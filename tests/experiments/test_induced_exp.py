"""``pgdat repro induced`` on a tiny preset: the planned AT run, then the students on its checkpoints."""

from __future__ import annotations

import json

import pytest

from pgdat.experiments import EXPERIMENTS, induced


@pytest.mark.slow
def test_induced_experiment_tiny(tmp_path, monkeypatch, tiny_overrides):
    tiny = [*tiny_overrides, "train.epochs=2", "train.checkpoint_every=1"]
    kw = {"student_epochs": 1, "student_overrides": ["optim.name=adam", "optim.lr=0.001", "optim.schedule=constant"],
          "sigma": 0.01, "pairs": 2, "n_dispersion": 16}
    monkeypatch.setitem(induced.PRESETS, "cpu", ("default", tiny, [1, 2], kw))
    rows = EXPERIMENTS["induced"].run("cpu", tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2]
    lines = (tmp_path / "at_run" / "metrics.jsonl").read_text().splitlines()[1:]
    logged = {m["epoch"]: m["test_robust_acc"] for m in map(json.loads, lines) if "epoch" in m}
    for r in rows:
        assert r["robust_test_acc"] == logged[r["epoch"]]  # read from the planned run's own log
        assert 0 <= r["induced_test_error"] <= 1 and r["local_dispersion"] >= 0
        # the student's final evaluation (eval.n_final = eval.n_test: the same test images as its last epoch's)
        final = json.loads((tmp_path / "students" / f"student_epoch_{r['epoch']}" / "final.json").read_text())
        assert r["induced_test_error"] == pytest.approx(1 - final["last"]["accuracy"]["clean"])
    assert json.loads((tmp_path / "summary.json").read_text())["meta"]["student_epochs"] == 1
    assert (tmp_path / "induced.png").is_file() and (tmp_path / "report.html").is_file()
