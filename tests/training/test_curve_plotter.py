"""CurvePlotter: figures redrawn at most as often as keeps plotting under its share of the run, always at the end."""

from __future__ import annotations

from types import SimpleNamespace

import pgdat.analysis.plots as plots
from pgdat.training.callbacks import CurvePlotter


def _fake_trainer(tmp_path, epochs: int) -> SimpleNamespace:
    history = [{"epoch": e, "lr": 0.1, "val_robust_acc": 0.5, "per_class_test_robust_acc": [0.5, 0.4],
                "per_class_test_clean_acc": [0.9, 0.8]} for e in range(1, epochs + 1)]
    cfg = SimpleNamespace(name="t", data=SimpleNamespace(name="mnist5k"))
    return SimpleNamespace(history=history, epoch=epochs, best={"epoch": 1}, cfg=cfg, out=tmp_path)


def test_redraws_are_throttled_and_the_fit_end_always_draws(tmp_path, monkeypatch):
    drawn: list[int] = []
    monkeypatch.setattr(plots, "plot_learning_curves", lambda history, *a, **k: drawn.append(len(history)))
    monkeypatch.setattr(plots, "plot_per_class", lambda *a, **k: None)
    plotter = CurvePlotter(max_share=1e-9)  # a redraw would have to wait ~forever
    trainer = _fake_trainer(tmp_path, 0)
    for e in range(1, 5):
        trainer.history = _fake_trainer(tmp_path, e).history
        trainer.epoch = e
        plotter.on_epoch_end(trainer, trainer.history[-1])
    assert drawn == [1]  # the first epoch only
    plotter.on_fit_end(trainer, {})
    assert drawn == [1, 4]  # the final figures show every epoch
    plotter.on_fit_end(trainer, {})
    assert drawn == [1, 4]  # nothing new: no redraw


def test_unthrottled_plotter_draws_every_epoch_and_real_files(tmp_path):
    plotter = CurvePlotter(max_share=1e9)
    for e in (1, 2):
        trainer = _fake_trainer(tmp_path, e)
        plotter.on_epoch_end(trainer, trainer.history[-1])
        assert plotter.drawn_epoch == e
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "per_class.png").stat().st_size > 0


def test_per_class_figure_is_redrawn_only_when_a_newer_evaluated_epoch_arrives(tmp_path, monkeypatch):
    per_class: list[int] = []
    monkeypatch.setattr(plots, "plot_learning_curves", lambda *a, **k: None)
    monkeypatch.setattr(plots, "plot_per_class", lambda metrics, *a, **k: per_class.append(metrics["epoch"]))
    plotter = CurvePlotter(max_share=1e9)  # curves every epoch
    trainer = _fake_trainer(tmp_path, 0)
    for e in range(1, 7):  # evaluated (per-class metrics present) on epochs 2 and 5 only
        m = {"epoch": e, "lr": 0.1}
        if e in (2, 5):
            m |= {"per_class_test_robust_acc": [0.5, 0.4], "per_class_test_clean_acc": [0.9, 0.8]}
        trainer.history = [*trainer.history, m]
        trainer.epoch = e
        plotter.on_epoch_end(trainer, m)
    assert per_class == [2, 5]


def test_learning_curves_join_the_evaluated_epochs(tmp_path, monkeypatch):
    """With eval.every > 1 the val/test values exist on some epochs only; the plotted line joins them."""
    history = [{"epoch": e, "lr": 0.1, "train_robust_acc": 0.5} | ({"val_robust_acc": 0.1 * e} if e % 2 == 0 else {})
               for e in range(1, 7)]
    captured = {}
    real_save = plots.save_figure

    def keep(fig, path, dpi=110):
        captured["fig"] = fig
        return real_save(fig, path, dpi)

    monkeypatch.setattr(plots, "save_figure", keep)
    plots.plot_learning_curves(history, tmp_path / "c.png")
    lines = {ln.get_label(): ln for ln in captured["fig"].axes[0].get_lines()}
    assert list(lines["val robust"].get_xdata()) == [2, 4, 6]
    assert [round(v, 6) for v in lines["val robust"].get_ydata()] == [20.0, 40.0, 60.0]
    assert (tmp_path / "c.png").stat().st_size > 0


def test_plots_are_titled_by_the_run_directory_and_the_config_name(tmp_path):
    from pgdat.training.callbacks import run_title

    assert run_title(tmp_path / "runs" / "default", "default") == "runs/default"
    assert run_title(tmp_path / "runs" / "std", "default") == "runs/std (default)"
    assert run_title(tmp_path / "a" / "seed0", "default") != run_title(tmp_path / "b" / "seed0", "default")
