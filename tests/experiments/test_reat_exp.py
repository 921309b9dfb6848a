import json

import pytest

from pgdat.experiments import EXPERIMENTS, reat


@pytest.mark.slow
def test_reat_experiment_tiny(tmp_path, monkeypatch, tiny_overrides):
    tiny = [o for o in tiny_overrides if not o.startswith("data.n_train")]
    monkeypatch.setitem(reat.PRESETS, "cpu", ("default", tiny + ["train.epochs=1"], 10.0, 60))
    monkeypatch.setattr(reat, "METHODS", {"pgd_at": [], "reat": []})
    rows = EXPERIMENTS["reat"].run("cpu", tmp_path)
    assert [r["method"] for r in rows] == ["pgd_at", "reat"]
    for r in rows:
        assert 0 <= r["tail_robust_acc"] <= r["tail_clean_acc"] + 1e-9 <= 1 + 1e-9 and len(r["per_class_robust"]) == 10
    cfg = (tmp_path / "reat" / "config.yaml").read_text()
    assert "long_tail" in cfg
    assert json.loads((tmp_path / "summary.json").read_text())["meta"]["rho"] == 10.0


def test_per_class_plot_names_the_classes(tmp_path, monkeypatch):
    from pgdat.experiments import reat

    figs = []
    monkeypatch.setattr(reat.plt, "close", figs.append)
    rows = [{"method": m, "per_class_robust": [0.1 * c for c in range(10)]} for m in ("pgd_at", "reat")]
    reat._plot(rows, tmp_path / "p.png", "cifar10")
    labels = [t.get_text() for t in figs[0].axes[0].get_xticklabels()]
    assert labels[:2] == ["airplane", "automobile"] and labels[-1] == "truck" and (tmp_path / "p.png").exists()
