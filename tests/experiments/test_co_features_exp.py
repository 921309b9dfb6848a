"""``pgdat repro co-features`` machinery on a tiny preset, and the paper preset's recipe."""

from __future__ import annotations

import json

import pytest

from pgdat.config import load_config
from pgdat.experiments import EXPERIMENTS
from pgdat.experiments import co_features as exp

TINY = ["data.n_train=64", "data.val_size=32", "data.batch_size=64", "train.epochs=1", "attack.steps=1",
        "attack.eps_warmup_epochs=0", "eval.attack=pgd-2", "eval.n_test=32", "eval.final_attacks=clean,fgsm,pgd-2",
        "eval.n_final=32", "train.progress=false", "train.device=cpu"]


def test_paper_preset_holds_the_co_features_recipe():
    import pgdat.data.injected  # noqa: F401
    import pgdat.training.co_monitor  # noqa: F401

    spec = exp.PRESETS["paper"]
    cfg = load_config(spec["recipe"], exp.run_overrides(spec, 6 / 255, 4.0, "fgsm_at"))
    assert cfg.data.name == "cifar10" and cfg.model.name == "preact_resnet18" and cfg.train.epochs == 30
    assert (cfg.optim.schedule, cfg.optim.lr, cfg.optim.peak, cfg.data.batch_size) == ("cyclic", 0.2, 0.5, 128)
    # unclipped injected images leave [0,1], where AutoAttack (it clamps to [0,1]) cannot judge: PGD-50x10 ends it
    assert cfg.eval.final_attacks == "clean,fgsm,pgd-50x10" and cfg.eval.step_size == pytest.approx(2 / 255)
    plain = load_config(spec["recipe"], exp.run_overrides(spec, 6 / 255, 0.0, "fgsm_at"))  # no injection: [0,1]
    assert plain.eval.final_attacks == "clean,fgsm,pgd-50x10,autoattack"
    assert cfg.attack.eps == pytest.approx(6 / 255) and cfg.attack.bn_mode == "train"
    assert dict(cfg.data.transforms[0]) == {"name": "inject_features", "beta": 4.0, "clip_injected": False}
    assert cfg.train.callbacks[0]["name"] == "co_monitor" and cfg.attack.box == "auto"  # unclipped: no box
    assert {m for _, _, m in spec["grid"]} == set(exp.METHODS)
    assert exp.run_name(spec, 6 / 255, 4.0, "fgsm_at", True) == "fgsm_at_eps6_beta4_perp_unclipped"
    assert exp.run_name(spec, 6 / 255, 0.0, "fgsm_at") == "fgsm_at_eps6_beta0"


def test_paper_preset_grad_align_uses_the_repo_lambda_at_every_eps():
    # co_features config/injected_feature_cifar_gradalign_train: reg_lambda 0.2, not GradAlign's lambda(eps) rule
    spec = exp.PRESETS["paper"]
    for eps in sorted({e for e, _, m in spec["grid"] if m == "grad_align"}):
        cfg = load_config(spec["recipe"], exp.run_overrides(spec, eps, 4.0, "grad_align"))
        assert cfg.method.params == {"lam": 0.2}, eps


def test_cpu_preset_clips_and_adds_one_orthogonal_run():
    spec = exp.PRESETS["cpu"]
    assert spec["clip_injected"] and len(spec["orthogonal"]) == 1
    eps, beta, method = spec["orthogonal"][0]
    cfg = load_config(spec["recipe"], exp.run_overrides(spec, eps, beta, method, orthogonal=True))
    assert dict(cfg.data.transforms[0]) == {"name": "inject_features", "beta": beta, "clip_injected": True,
                                            "orthogonal": True}
    assert exp.run_name(spec, eps, beta, method, True) == "fgsm_at_eps51_beta40_perp"
    assert exp.run_name(spec, eps, beta, method) == "fgsm_at_eps51_beta40"  # the runs an earlier sweep wrote


@pytest.mark.slow
def test_repro_co_features_tiny_preset(tmp_path, monkeypatch):
    monitor = "{name: co_monitor, n_train: 16, n_val: 16, attack: pgd-2}"
    tiny = {**exp.PRESETS["cpu"], "overrides": TINY, "monitor": monitor, "clip_injected": False,
            "grid": [(0.1, 0.0, "fgsm_at"), (0.1, 30.0, "n_fgsm")], "orthogonal": [(0.1, 30.0, "fgsm_at")]}
    monkeypatch.setitem(exp.PRESETS, "cpu", tiny)
    rows = EXPERIMENTS["co-features"].run("cpu", tmp_path)
    assert [(r["method"], r["beta"], r["injection"]) for r in rows] == [
        ("fgsm_at", 0.0, "plain"), ("n_fgsm", 30.0, "plain"), ("fgsm_at", 30.0, "orthogonal")]
    for r in rows:
        assert 0 <= r["pgd_acc"] <= r["fgsm_acc"] <= r["clean_acc"] <= 1 and r["co_detected"] in (True, False)
    # the clean control keeps the [0,1] box; unclipped injected data lies outside it and is attacked without it
    assert rows[0]["out_of_box"] == 0 and rows[0]["box"] == "unit" and rows[0]["clip_injected"] is None
    assert all(r["out_of_box"] > 0 and r["box"] == "none" and r["clip_injected"] is False for r in rows[1:])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["rows"]) == 3 and (tmp_path / "co_features.png").is_file()
    assert "unclipped" in summary["meta"]["injection"]
    assert (tmp_path / "fgsm_at_eps25.5_beta30_perp_unclipped" / "final.json").is_file()
    run_dir = tmp_path / "n_fgsm_eps25.5_beta30_unclipped"
    assert "inject_features" in (run_dir / "config.yaml").read_text()
    first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[1])
    assert {"co_val_pgd_acc", "co_train_fgsm_acc", "co_detected", "co_epoch"} <= set(first)


@pytest.mark.slow
def test_rerun_reuses_finished_runs_and_retrains_changed_ones(tmp_path, monkeypatch):
    from pgdat.checkpoint import load_checkpoint

    monitor = "{name: co_monitor, n_train: 16, n_val: 16, attack: pgd-2}"
    tiny = {**exp.PRESETS["cpu"], "overrides": TINY, "monitor": monitor, "grid": [(0.1, 30.0, "fgsm_at")],
            "orthogonal": []}
    monkeypatch.setitem(exp.PRESETS, "cpu", tiny)
    run_dir = tmp_path / "fgsm_at_eps25.5_beta30"
    first = EXPERIMENTS["co-features"].run("cpu", tmp_path)
    stamp = (run_dir / "last.pt").stat().st_mtime_ns
    assert EXPERIMENTS["co-features"].run("cpu", tmp_path) == first  # reused:
    assert (run_dir / "last.pt").stat().st_mtime_ns == stamp
    (run_dir / "final.json").unlink()  # killed during the final evaluation: evaluate again, do not retrain
    assert EXPERIMENTS["co-features"].run("cpu", tmp_path)[0]["pgd_acc"] == first[0]["pgd_acc"]
    assert (run_dir / "last.pt").stat().st_mtime_ns == stamp
    # a changed preset (same run name) retrains instead of reporting the old run
    monkeypatch.setitem(exp.PRESETS, "cpu", {**tiny, "overrides": [*TINY, "optim.lr=0.01", "eval.n_final=16"]})
    (row,) = EXPERIMENTS["co-features"].run("cpu", tmp_path)
    assert load_checkpoint(run_dir / "last.pt")["config"]["optim"]["lr"] == 0.01
    assert json.loads((run_dir / "final.json").read_text())["n"] == 16
