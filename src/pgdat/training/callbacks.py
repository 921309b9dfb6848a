"""Callbacks observe a run: metrics log, plots, console lines, monitors. Each hook receives a
:class:`~pgdat.training.run_view.RunView` (called ``run`` below), a narrow documented view of the run, never the
Trainer: its epoch, step, history, header, model, optimizer, data, output directory and config, and explicit
requests (``run.request_stop(reason)``, ``run.request_rollback(weights)``, ``run.override_attack(preset)``).

Writing a callback: subclass :class:`Callback`, override the hooks you need, register it with
``@CALLBACKS.register("name")`` above the class and add its module to :mod:`pgdat.training.callback_list` (then
``train.callbacks: [{name: name, ...options}]`` builds it). CONTRIBUTING.md ("Add a callback") has an example."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgdat.checkpoint import atomic_write_bytes
from pgdat.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView


class Callback:
    """Hooks, in call order per epoch: ``on_epoch_start`` and ``on_step_end`` (every rank; the latter after the
    optimizer step, while parameter ``.grad`` still holds the step's unscaled gradient), ``on_epoch_metrics`` (every
    rank, before best/checkpoint: may add metric keys or call ``run.request_stop``), then ``on_epoch_end`` (main
    rank, after the checkpoint is written). ``on_fit_start`` and ``on_fit_end`` run on the main rank only. Keep
    per-step work on the device: no ``.item()`` in ``on_step_end``. ``metrics``: the epoch's row of
    ``metrics.jsonl`` (JSON-serialisable values), ``out``: the step's method outputs (``loss`` and tensors),
    ``summary``: the final evaluation (``final.json``)."""

    def on_fit_start(self, run: RunView) -> None:
        pass

    def on_epoch_start(self, run: RunView) -> None:
        pass

    def on_step_end(self, run: RunView, out: dict[str, Any]) -> None:
        pass

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, run: RunView, metrics: dict[str, Any]) -> None:
        pass

    def on_fit_end(self, run: RunView, summary: dict[str, Any]) -> None:
        pass


CALLBACKS: Registry[type[Callback]] = Registry("callback")  # filled where each callback is defined; complete
# once pgdat.training.callback_list (the one list of callback modules) is imported


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


class MetricsLogger(Callback):
    """``metrics.jsonl``: a header line (versions, git SHA, device, seed) then one object per epoch.

    Rewritten atomically from the trainer's history (which lives in the checkpoint) after every epoch, so a
    resumed run's log never holds an epoch twice or a torn line.
    """

    def _write(self, run: RunView) -> None:
        lines = [json.dumps(dict(run.header))] + [json.dumps(m) for m in run.history]
        write_text(run.out / "metrics.jsonl", "\n".join(lines) + "\n")

    def on_fit_start(self, run: RunView) -> None:
        self._write(run)

    def on_epoch_end(self, run: RunView, metrics: dict[str, Any]) -> None:
        self._write(run)


class CurvePlotter(Callback):
    """``curves.png``: clean and robust accuracy (train/val/test) and learning rate per epoch, best epoch marked;
    ``per_class.png``: the latest evaluated epoch's per-class clean and robust test accuracy.

    Drawing costs ~0.1-0.3 s of CPU (matplotlib), a few percent of a short epoch, so after the first epoch the
    curves are redrawn only once the time since the last drawing is at least ``1 / max_share`` times what drawing
    cost (plotting stays under ``max_share`` of the run), and always at the end of the fit; ``per_class.png`` is
    redrawn only when a newer evaluated epoch has arrived. matplotlib is imported (~0.5 s, once) at the start of
    the fit, with the rest of the set-up, not inside the first epoch.
    """

    def __init__(self, max_share: float = 0.005) -> None:
        self.max_share = max_share
        self.cost, self.drawn_at, self.drawn_epoch, self.per_class_epoch = 0.0, None, None, None

    def on_fit_start(self, run: RunView) -> None:
        import pgdat.analysis.plots  # noqa: F401  (one-off import cost, paid during set-up)

    def _draw(self, run: RunView) -> None:
        from pgdat.analysis.plots import plot_learning_curves, plot_per_class

        t0 = time.perf_counter()
        title = run_title(run.out, run.cfg.name)
        plot_learning_curves(run.history, run.out / "curves.png", best_epoch=run.best_epoch,
                             title=title)
        latest = next((m for m in reversed(run.history) if "per_class_test_robust_acc" in m), None)
        if latest is not None and latest["epoch"] != self.per_class_epoch:
            plot_per_class(latest, run.out / "per_class.png", title=f"{title}, epoch {latest['epoch']}",
                           dataset=run.cfg.data.name)
            self.per_class_epoch = latest["epoch"]
        self.drawn_at = time.perf_counter()
        self.cost, self.drawn_epoch = self.drawn_at - t0, run.epoch

    def on_epoch_end(self, run: RunView, metrics: dict[str, Any]) -> None:
        if self.drawn_at is None or (time.perf_counter() - self.drawn_at) * self.max_share >= self.cost:
            self._draw(run)

    def on_fit_end(self, run: RunView, summary: dict[str, Any]) -> None:
        if run.history and self.drawn_epoch != run.epoch:
            self._draw(run)


class ConsoleLogger(Callback):
    """One line per epoch on stdout."""

    def on_fit_start(self, run: RunView) -> None:
        print(f"run {run.out} | {run.cfg.method.name} on {run.cfg.data.name} with {run.cfg.model.name}"
              f" | device {run.header['device']} | precision {run.precision}", flush=True)

    def on_epoch_end(self, run: RunView, m: dict[str, Any]) -> None:
        def pct(key: str) -> str:
            v = m.get(key)
            return "  -  " if v is None else f"{100 * v:5.1f}"

        rob = run.cfg.eval.attack.upper()  # the per-epoch attack, not the final (AutoAttack-grade) number
        print(f"epoch {m['epoch']:>3} | loss {m['train_loss']:.4f} | train rob {pct('train_robust_acc')} | "
              f"val clean {pct('val_clean_acc')} {rob} {pct('val_robust_acc')} | test clean {pct('test_clean_acc')} "
              f"{rob} {pct('test_robust_acc')} | lr {m['lr']:.4g} | {_eps_text(run, m['epoch'])} | "
              f"{m['time_train']:.1f}s+{m['time_eval']:.1f}s | {_elapsed_eta(run, m['epoch'])}", flush=True)


def run_title(out: Path, name: str) -> str:
    """A plot title that tells runs apart: the run directory (its last two parts), and the config name when the
    folder is not named after it (two runs of the ``default`` config look alike otherwise)."""
    where = "/".join(Path(out).resolve().parts[-2:])
    return where if Path(out).name == name else f"{where} ({name})"


def _eps_text(run: RunView, epoch: int) -> str:
    """The training radius reached at the end of ``epoch`` (pixel units; "warm-up" while it still ramps)."""
    from pgdat.methods.base import ramp_at

    a = run.attack
    ramp = ramp_at(a, float(epoch))
    return f"eps {a.eps * ramp:.4g}" + (" (warm-up)" if ramp < 1 else "")


def _elapsed_eta(run: RunView, epoch: int) -> str:
    """Wall time of the epochs so far (training + per-epoch evaluation, resumed epochs included) and the time left
    at their mean pace (the final evaluation not included)."""
    spent = [h.get("time_train", 0.0) + h.get("time_eval", 0.0) for h in run.history]
    elapsed = sum(spent)
    left = max(run.cfg.train.epochs - epoch, 0) * (elapsed / len(spent) if spent else 0.0)
    return f"elapsed {_clock(elapsed)}, ETA {_clock(left)}"


def _clock(seconds: float) -> str:
    """``seconds`` as ``1h02m03s`` / ``2m03s`` / ``3s``."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    mins, sec = divmod(rest, 60)
    return f"{h}h{mins:02d}m{sec:02d}s" if h else f"{mins}m{sec:02d}s" if mins else f"{sec}s"
