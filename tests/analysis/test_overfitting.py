import json

from pgdat.analysis.overfitting import robust_overfitting
from pgdat.cli.main import main

HISTORY = [
    {"epoch": 1, "test_robust_acc": 0.30, "val_robust_acc": 0.31, "train_robust_acc": 0.35, "test_clean_acc": 0.8},
    {"epoch": 2, "test_robust_acc": 0.45, "val_robust_acc": 0.40, "train_robust_acc": 0.50, "test_clean_acc": 0.8},
    {"epoch": 3, "test_robust_acc": 0.41, "val_robust_acc": 0.44, "train_robust_acc": 0.70, "test_clean_acc": 0.8},
    {"epoch": 4, "test_robust_acc": 0.38, "val_robust_acc": 0.39, "train_robust_acc": 0.90, "test_clean_acc": 0.8},
]


def test_best_last_gap_and_val_selection():
    s = robust_overfitting(HISTORY)
    assert s["best_epoch"] == 2 and s["best_robust_test"] == 0.45 and s["last_robust_test"] == 0.38
    assert abs(s["robust_overfitting_gap"] - 0.07) < 1e-12
    assert s["val_selected_epoch"] == 3 and s["val_selected_robust_test"] == 0.41
    assert [round(g, 2) for _, g in s["train_test_robust_gap"]] == [0.05, 0.05, 0.29, 0.52]


def test_cli_writes_summary_and_plot(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps({"type": "header"})] + [json.dumps(h | {"lr": 0.1}) for h in HISTORY]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["analyze", "overfitting", str(run)]) == 0
    assert "best robust test 45.00% (epoch 2)" in capsys.readouterr().out
    assert json.loads((run / "robust_overfitting.json").read_text())["run"]["best_epoch"] == 2
    assert (run / "robust_overfitting.png").stat().st_size > 1000
    assert main(["analyze", "overfitting", str(tmp_path / "nope")]) == 2


def test_run_evaluated_every_other_epoch(tmp_path):
    # eval.every=2: epochs 1 and 3 have only training metrics; the summary and the plot use the evaluated epochs
    from pgdat.analysis.overfitting import plot_robust_overfitting

    hist = [{k: v for k, v in h.items() if h["epoch"] % 2 == 0 or k in ("epoch", "train_robust_acc")} for h in HISTORY]
    s = robust_overfitting(hist)
    assert (s["best_epoch"], s["last_epoch"], s["val_selected_epoch"]) == (2, 4, 2)
    assert plot_robust_overfitting({"run": hist}, tmp_path / "ro.png").stat().st_size > 1000
