import json

import pytest
import yaml

from pgdat.experiments import EXPERIMENTS, deat


@pytest.mark.slow
def test_deat_experiment_tiny(tmp_path, monkeypatch, tiny_overrides):
    monkeypatch.setitem(deat.PRESETS, "cpu", ("default", tiny_overrides + ["train.epochs=1"],
                                              {"lr": [0.01], "batch_size": [32, 64]}, {"lr": 0.01, "batch_size": 64}))
    monkeypatch.setattr(deat, "COMMON", ["train.callbacks=[{name: train_eval, n: 64}, {name: grad_noise, pairs: 1}]",
                                         "method.name=pgd_at"])
    rows = EXPERIMENTS["deat"].run("cpu", tmp_path)
    assert [(r["method"], r["batch_size"]) for r in rows] == [("pgd_at", 32), ("pgd_at", 64), ("pgd_at", 64),
                                                             ("deat", 64)]
    dirs = ["pgd_at_lr0.01_b32", "pgd_at_lr0.01_b64", "pgd_at_base", "deat_base"]
    for r, name in zip(rows, dirs, strict=True):
        # lr and batch size as the run was configured (config.yaml), not as the row was computed
        cfg = yaml.safe_load((tmp_path / name / "config.yaml").read_text())
        assert (r["lr"], r["batch_size"]) == (cfg["optim"]["lr"], cfg["data"]["batch_size"])
        assert r["lr_over_b"] == pytest.approx(cfg["optim"]["lr"] / cfg["data"]["batch_size"])
        last = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[-1])
        assert r["grad_noise"] == last["grad_noise"] > 0 and -1 <= r["robust_gap"] <= 1
        assert r["robust_gap"] == pytest.approx(last["train_eval_robust_acc"] - last["test_robust_acc"])
    assert yaml.safe_load((tmp_path / "deat_base" / "config.yaml").read_text())["optim"]["name"] == "deat"
    assert json.loads((tmp_path / "summary.json").read_text())["rows"][-1]["method"] == "deat"
    assert (tmp_path / "report.html").is_file() and (tmp_path / "deat.png").is_file()
