"""Every PNG pgdat draws, at its default size: no text is clipped (each drawn text lies inside the figure), and
per-class axes carry the dataset's class names. Each plotting function runs on small synthetic inputs shaped like
a real run's; ``Figure.savefig`` is wrapped so the check sees every figure at the moment it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from pgdat.analysis.criticality import plot_heatmap
from pgdat.analysis.induced import plot_induced
from pgdat.analysis.ntk import plot_ntk
from pgdat.analysis.overfitting import plot_robust_overfitting
from pgdat.analysis.plots import class_names, plot_learning_curves, plot_per_class, plot_series
from pgdat.report.html import per_class_figure, render_report
from pgdat.report.runs import Run

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TITLE = "runs/cifar10_pgd_at_preact18_seed0 (cifar10/pgd_at_preact18), epoch 200"


def _drawn_texts(fig: Figure) -> list[Text]:
    """The visible, non-empty texts of ``fig`` that a draw puts on the canvas: tick labels only for ticks inside
    the axis' view interval (matplotlib keeps stale labels for the others and does not draw them)."""
    tick_labels, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for ticks, locs in ((axis.get_major_ticks(), axis.get_majorticklocs()),
                                (axis.get_minor_ticks(), axis.get_minorticklocs())):
                for tick in ticks:
                    tick_labels.update((id(tick.label1), id(tick.label2)))
                # get_major_ticks keeps spare Tick objects beyond the locations: pair only the first len(locs)
                for tick, loc in zip(ticks, locs, strict=False):
                    tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
                    drawn += [t for t in (tick.label1, tick.label2) if lo - tol <= loc <= hi + tol]
    drawn += [t for t in fig.findobj(Text) if id(t) not in tick_labels]
    return [t for t in drawn if t.get_visible() and t.get_text().strip()]


def clipped_texts(fig: Figure) -> list[str]:
    """Texts of ``fig`` whose window extent (pixels) leaves the figure's extent by more than one pixel."""
    fig.canvas.draw()
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    out = []
    for t in _drawn_texts(fig):
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            out.append(f"{t.get_text()!r} at x {e.x0:.0f}..{e.x1:.0f}, y {e.y0:.0f}..{e.y1:.0f} "
                       f"(figure {box.width:.0f} x {box.height:.0f})")
    return out


@pytest.fixture
def saved(monkeypatch) -> dict[str, dict[str, Any]]:
    """Every figure saved while the test runs: its clipped texts and its tick labels, by file name."""
    seen: dict[str, dict[str, Any]] = {}
    original = Figure.savefig

    def check_then_save(self: Figure, fname, *args, **kwargs):
        name = Path(fname).name if isinstance(fname, (str, Path)) else f"buffer{len(seen)}"
        name = name.removeprefix(".").removesuffix(".tmp.png")  # save_figure writes .NAME.tmp.png, then renames
        labels = [t.get_text() for ax in self.axes for t in ax.get_xticklabels()]
        seen[name] = {"clipped": clipped_texts(self), "xticks": labels}
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", check_then_save)
    return seen


def _history(epochs: int = 10, every: int = 5, classes: int = 10) -> list[dict[str, Any]]:
    """Rows like metrics.jsonl of a run with eval.every=``every``: accuracies in [0,1], lr, per-class lists."""
    rows = []
    for e in range(1, epochs + 1):
        row: dict[str, Any] = {"epoch": e, "lr": 0.1 * 0.9 ** e, "train_clean_acc": 0.5 + 0.03 * e,
                               "train_robust_acc": 0.3 + 0.04 * e, "grad_norm_mean": 1.0 / e, "grad_norm_var": 0.1}
        if e % every == 0 or e == epochs:
            row.update({f"{s}_{k}_acc": 0.4 + 0.02 * e for s in ("val", "test") for k in ("clean", "robust")})
            row["robust_acc_by"] = "PGD-10, per-epoch"
            row["per_class_test_clean_acc"] = [0.5 + 0.04 * c for c in range(classes)]
            row["per_class_test_robust_acc"] = [0.2 + 0.05 * c for c in range(classes)]
        rows.append(row)
    return rows


def _assert_unclipped(saved: dict[str, dict[str, Any]], expect: int) -> None:
    assert len(saved) >= expect, list(saved)
    bad = {name: s["clipped"] for name, s in saved.items() if s["clipped"]}
    assert not bad, bad


def test_run_plots_are_not_clipped_and_name_the_classes(saved, tmp_path) -> None:
    history = _history()
    plot_learning_curves(history, tmp_path / "curves.png", best_epoch=10, title=TITLE)
    plot_series(history, ["grad_norm_mean"], tmp_path / "grad_norm.png", ylabel="squared gradient norm",
                band="grad_norm_var", title=TITLE)
    plot_per_class(history[-1], tmp_path / "per_class.png", title=TITLE, dataset="cifar10")
    plot_per_class(history[-1], tmp_path / "per_class_mnist.png", title=TITLE, dataset="mnist5k")
    _assert_unclipped(saved, 4)
    assert saved["per_class.png"]["xticks"] == CIFAR10
    assert saved["per_class_mnist.png"]["xticks"] == [str(d) for d in range(10)]


def test_class_names_come_from_the_dataset_registry_or_fall_back_to_indices() -> None:
    assert class_names("cifar10", 10) == CIFAR10
    assert class_names("fashion_mnist", 10)[0] == "T-shirt/top"
    assert len(class_names("cifar100", 100)) == 100 and class_names("cifar100", 100)[0] == "apple"
    assert class_names("cifar10", 4) == ["0", "1", "2", "3"]  # a run whose lists do not match the dataset
    assert class_names("no-such-data", 3) == ["0", "1", "2"] and class_names(None, 2) == ["0", "1"]


def test_report_figures_are_not_clipped_and_name_the_classes(saved, tmp_path) -> None:
    runs = [Run(tmp_path / name, {"name": "default", "data": {"name": "cifar10"}, "method": {"name": "pgd_at"},
                    "attack": {"eps": 8 / 255, "steps": 10, "restarts": 1}}, {}, _history())
            for name in ("cifar10_pgd_at_preact18_seed0", "cifar10_standard_preact18_seed0")]
    per_class_figure(runs[0])
    assert saved["buffer0"]["xticks"] == CIFAR10
    assert "<img" in render_report(runs)
    _assert_unclipped(saved, 3)


def test_analysis_plots_are_not_clipped(saved, tmp_path) -> None:
    history = _history()
    plot_robust_overfitting({"pgd_at_preact18_seed0": history, "pgd_at_te_preact18_seed0": history},
                            tmp_path / "robust_overfitting.png")
    plot_induced([{"epoch": e, "induced_test_error": 0.1 * e, "robust_test_acc": 0.4, "local_dispersion": 0.01 * e}
                  for e in (10, 20, 30)], tmp_path / "induced.png")
    layers = [{"layer": f"features.{i}.conv", "stage": f"stage{i // 2}", "criticality": 10.0 * i} for i in range(4)]
    plot_heatmap({k: {"layers": layers, "mean": 15.0} for k in ("standard", "pgd_at eps 0.3", "trades eps 0.3")},
                 tmp_path / "heatmap.png", title="layer criticality on 500 mnist5k test images, 3 trials")
    curves = {k: [{"epoch": e, "kernel_distance_to_prev": 0.1 / e if e else None, "velocity_per_epoch": 0.1 / (e or 1),
                   "top_eigenvalue": 10.0 + e, "effective_rank": 5.0 + e} for e in range(4)]
              for k in ("standard", "pgd_at")}
    spectra = {k: [{"eigenvalues": [10.0 / (i + 1) for i in range(20)]}] for k in curves}
    plot_ntk(curves, spectra, tmp_path / "ntk.png")
    _assert_unclipped(saved, 4)


def test_the_check_sees_a_clipped_title() -> None:
    """The checker itself: a title far wider than its figure is reported, a short one is not."""
    from pgdat.analysis.plots import plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("a title much too long for a figure four inches wide " * 2)
    clipped = clipped_texts(fig)
    ax.set_title("short")
    assert len(clipped) == 1 and "too long" in clipped[0] and clipped_texts(fig) == []
    plt.close(fig)


def test_experiment_plots_are_not_clipped(saved, tmp_path) -> None:
    from pgdat.experiments import co_features, deat, memorization, reat

    history = _history()
    memorization._plot({"pgd_at": history, "trades": history}, tmp_path / "memorization.png")
    deat._plot([{"method": m, "lr_over_b": 0.05 / b, "robust_gap": 0.1, "best_robust_test": 0.4}
                for m, b in (("pgd_at", 32), ("pgd_at", 128), ("deat", 64))], tmp_path / "deat.png")
    co_features.plot_heatmaps([{"method": m, "beta": b, "eps_255": 51.0, "pgd_acc": 0.5}
                               for m in co_features.METHODS for b in (0.0, 40.0)], tmp_path / "co_features.png")
    reat._plot([{"method": m, "per_class_robust": [0.6 - 0.05 * c for c in range(10)]} for m in reat.METHODS],
               tmp_path / "reat.png")
    _assert_unclipped(saved, 4)


def test_report_per_class_legend_names_the_split_and_the_attack() -> None:
    from pgdat.report.html import per_class_label

    assert per_class_label("per_class_test_clean_acc", "PGD-10, per-epoch") == "test clean"
    assert per_class_label("per_class_test_robust_acc", "PGD-10, per-epoch") == "test PGD-10, per-epoch"
    assert per_class_label("per_class_test_robust_acc", None) == "test robust"
    assert per_class_label("per_class_odd_key_here", None) == "per_class_odd_key_here"
