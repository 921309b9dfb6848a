"""Per-class and head/medium/tail accuracies: an absent class is None (unknown), not 0% (always wrong)."""

from __future__ import annotations

import json

import torch

from pgdat.analysis.plots import plot_per_class
from pgdat.training.evaluation import per_class_metrics


def test_absent_class_and_empty_group_are_none_not_zero(tmp_path):
    # rows: clean hits, robust hits, examples; class 2 has no evaluated example
    per_class = torch.tensor([[4.0, 1.0, 0.0, 2.0], [2.0, 0.0, 0.0, 1.0], [4.0, 2.0, 0.0, 4.0]], dtype=torch.float64)
    out = per_class_metrics("test", per_class, {"head": [0, 1], "medium": [3], "tail": [2]})
    assert out["per_class_test_clean_acc"] == [1.0, 0.5, None, 0.5]
    assert out["per_class_test_robust_acc"] == [0.5, 0.0, None, 0.25]
    assert out["test_head_clean_acc"] == 5 / 6 and out["test_head_robust_acc"] == 2 / 6
    assert out["test_medium_robust_acc"] == 0.25
    assert out["test_tail_clean_acc"] is None and out["test_tail_robust_acc"] is None
    json.dumps(out, allow_nan=False)  # metrics.jsonl stays strict JSON
    assert plot_per_class(out, tmp_path / "p.png").stat().st_size > 0  # the absent class simply has no bar


def test_per_class_legend_names_the_attack_and_stays_off_the_bars(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    import pgdat.analysis.plots as plots

    seen = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **k: seen.setdefault("fig", fig) and path)
    metrics = {"per_class_test_clean_acc": [1.0] * 10, "per_class_test_robust_acc": [0.9] * 10,
               "robust_acc_by": "PGD-10, per-epoch"}
    plot_per_class(metrics, tmp_path / "p.png", title="runs/x, epoch 5")
    ax = seen["fig"].axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["clean", "PGD-10, per-epoch"]
    seen["fig"].canvas.draw()
    box, axes_box = legend.get_window_extent(), ax.get_window_extent()
    assert box.y0 >= axes_box.y1 - 1  # above the axes: a 100% bar is never hidden behind it
    assert box.y1 <= seen["fig"].bbox.y1 + 1  # and inside the figure (not clipped)
    plt.close(seen["fig"])
