"""The memorization and robust-overfitting experiments end to end on a tiny preset (seconds)."""

import json

import pytest

from pgdat.experiments import EXPERIMENTS, memorization, robust_overfitting


@pytest.mark.slow
def test_memorization_experiment_rows_and_plot(tmp_path, monkeypatch, tiny_overrides):
    monkeypatch.setitem(memorization.PRESETS, "cpu", ("default", tiny_overrides + ["train.epochs=2"]))
    rows = EXPERIMENTS["memorization"].run("cpu", tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rows"] == json.loads(json.dumps(rows))
    finals = [r for r in rows if r["epoch"] == "final"]
    assert [r["method"] for r in finals] == ["pgd_at", "trades"]
    for r in finals:
        assert r["grad_norm_mean"] > 0 and 0 <= r["train_robust_acc"] <= r["train_clean_acc"] + 1e-9 <= 1 + 1e-9
    assert (tmp_path / "memorization.png").is_file() and "| method |" in (tmp_path / "summary.md").read_text()
    cfg = (tmp_path / "pgd_at" / "config.yaml").read_text()
    assert "label_noise" in cfg


@pytest.mark.slow
def test_robust_overfitting_experiment(tmp_path, monkeypatch, tiny_overrides):
    monkeypatch.setitem(robust_overfitting.PRESETS, "cpu",
                        ("default", tiny_overrides + ["train.epochs=3"], {"start_epoch": 2, "end_epoch": 3},
                         [("pgd_at", 0.5), ("pgd_at_te", 0.5), ("pgd_at", 0.0)]))
    rows = EXPERIMENTS["robust-overfitting"].run("cpu", tmp_path)
    assert [(r["method"], r["label_noise"]) for r in rows] == [("pgd_at", 0.5), ("pgd_at_te", 0.5), ("pgd_at", 0.0)]
    assert "label_noise" in (tmp_path / "pgd_at_noise0.5" / "config.yaml").read_text()
    assert "label_noise" not in (tmp_path / "pgd_at" / "config.yaml").read_text()
    for r, name in zip(rows, ("pgd_at_noise0.5", "pgd_at_te_noise0.5", "pgd_at"), strict=True):
        # each row holds its own run's numbers, read back here from that run's metrics.jsonl
        logged = [json.loads(s) for s in (tmp_path / name / "metrics.jsonl").read_text().splitlines()[1:]]
        robust = [m["test_robust_acc"] for m in logged]
        assert r["last_robust_test"] == robust[-1] and r["best_robust_test"] == max(robust)
        assert robust[r["best_epoch"] - 1] == max(robust) and r["gap"] == max(robust) - robust[-1]
    assert (tmp_path / "robust_overfitting.png").is_file()
