import json

import pytest

from pgdat.experiments import deat


@pytest.mark.slow
def test_deat_experiment_tiny(tmp_path, monkeypatch, tiny_overrides):
    monkeypatch.setitem(deat.PRESETS, "cpu", ("default", tiny_overrides + ["train.epochs=1"],
                                              {"lr": [0.01], "batch_size": [32, 64]}, {"lr": 0.01, "batch_size": 64}))
    monkeypatch.setattr(deat, "COMMON", ["train.callbacks=[{name: train_eval, n: 64}, {name: grad_noise, pairs: 1}]",
                                         "method.name=pgd_at"])
    rows = deat.run("cpu", tmp_path)
    assert [(r["method"], r["batch_size"]) for r in rows] == [("pgd_at", 32), ("pgd_at", 64), ("pgd_at", 64),
                                                             ("deat", 64)]
    for r in rows:
        assert r["grad_noise"] > 0 and -1 <= r["robust_gap"] <= 1 and r["lr_over_b"] == r["lr"] / r["batch_size"]
    assert json.loads((tmp_path / "summary.json").read_text())["rows"][-1]["method"] == "deat"
    assert (tmp_path / "report.html").is_file() and (tmp_path / "deat.png").is_file()
