"""CurvePlotter: figures redrawn at most as often as keeps plotting under its share of the run, always at the end."""

from __future__ import annotations

from types import SimpleNamespace

import pgdat.analysis.plots as plots
from pgdat.training.callbacks import CurvePlotter


def _fake_trainer(tmp_path, epochs: int) -> SimpleNamespace:
    history = [{"epoch": e, "lr": 0.1, "val_robust_acc": 0.5, "per_class_test_robust_acc": [0.5, 0.4],
                "per_class_test_clean_acc": [0.9, 0.8]} for e in range(1, epochs + 1)]
    return SimpleNamespace(history=history, epoch=epochs, best={"epoch": 1}, cfg=SimpleNamespace(name="t"),
                           out=tmp_path)


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
