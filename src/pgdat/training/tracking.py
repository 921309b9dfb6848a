"""Experiment trackers as callbacks: ``tensorboard`` (event files in the run directory) and ``wandb`` (Weights &
Biases, offline by default). Both are optional packages (``pip install 'pgdat[tensorboard]'`` / ``'pgdat[wandb]'``);
config validation reports a missing one before any data is loaded (the ``requires`` attribute).

What they log: every numeric per-epoch metric (``epoch/<key>``), the step outputs (loss and other scalars) every
``every_steps`` optimizer steps (``step/<key>``), the resolved config and the run header as text at the start, and the
final table (best.pt and last.pt accuracy per attack) at the end. Step values are kept on the device and read once
per epoch (no host sync inside the training loop).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from pgdat.config import config_to_dict
from pgdat.errors import PgdatError
from pgdat.training.callbacks import CALLBACKS, Callback, write_text

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView

WANDB_MODES = ("offline", "online", "disabled")


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics that are plain numbers (bools and None, lists and text left out)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def final_table(summary: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """The final evaluation as a Markdown table (rows best/last, a column per attack, accuracy in %) and as
    ``final/<which>_<attack>`` scalars (fractions in [0, 1])."""
    rows = [w for w in ("best", "last") if w in summary]
    attacks = list(summary[rows[0]]["accuracy"]) if rows else []
    lines = ["| checkpoint | " + " | ".join(attacks) + " |", "|---|" + "---|" * len(attacks)]
    scalars = {}
    for which in rows:
        acc = summary[which]["accuracy"]
        label = f"best (epoch {summary.get('best_epoch')})" if which == "best" else f"last (epoch {summary['epochs']})"
        lines.append(f"| {label} | " + " | ".join(f"{100 * acc[a]:.2f}" for a in attacks) + " |")
        scalars |= {f"final/{which}_{a}": float(acc[a]) for a in attacks}
    note = f"\n\naccuracy in % on {summary.get('n')} test images, eps {summary.get('eps')} ({summary.get('norm')})"
    return "\n".join(lines) + note, scalars


class _StepBuffer(Callback):
    """Shared by the trackers: the global optimizer step, and every ``every_steps``-th step's scalar outputs kept as
    device tensors until the epoch ends."""

    name = "?"  # the registered name, for messages

    def __init__(self, every_steps: int) -> None:
        if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 0:
            raise PgdatError(f"callback '{self.name}' option every_steps must be an integer >= 0 (got "
                             f"{every_steps!r}); 0 logs epochs only, e.g. every_steps: 50")
        self.every_steps, self.step = every_steps, 0
        self.pending: list[tuple[int, dict[str, torch.Tensor]]] = []

    def on_epoch_start(self, run: RunView) -> None:
        self.step = run.step
        self.pending = []

    def on_step_end(self, run: RunView, out: dict[str, Any]) -> None:
        self.step = run.step
        if self.every_steps and self.step % self.every_steps == 0:
            self.pending.append((self.step, {k: v.detach().float().reshape(()) for k, v in out.items()
                                             if isinstance(v, torch.Tensor) and v.numel() == 1}))

    def take_steps(self) -> list[tuple[int, dict[str, float]]]:
        """The buffered step values as floats (one host sync per epoch), emptying the buffer."""
        out = [(s, {f"step/{k}": float(v) for k, v in vals.items()}) for s, vals in self.pending]
        self.pending = []
        return out


@CALLBACKS.register("tensorboard")
class TensorBoardLogger(_StepBuffer):
    """TensorBoard event files in ``log_dir`` (default ``<run>/tensorboard``): ``epoch/<metric>`` at step = epoch,
    ``step/<output>`` every ``every_steps`` optimizer steps at step = global optimizer step, text ``config`` (YAML),
    ``header`` and ``final`` (table), and ``final/<which>_<attack>`` scalars. A resumed run adds the epochs that the
    event files lack (``.logged_epoch`` records the last one written)."""

    name, requires = "tensorboard", ("tensorboard",)
    install_hint = "pip install 'pgdat[tensorboard]' (or pip install tensorboard)"

    def __init__(self, log_dir: str | None = None, every_steps: int = 50) -> None:
        super().__init__(every_steps)
        self.log_dir, self.writer = log_dir, None

    def on_fit_start(self, run: RunView) -> None:
        from torch.utils.tensorboard import SummaryWriter

        path = Path(self.log_dir) if self.log_dir else run.out / "tensorboard"
        self.writer, self.marker = SummaryWriter(str(path)), path / ".logged_epoch"
        logged = int(self.marker.read_text()) if self.marker.is_file() else 0
        config = yaml.safe_dump(config_to_dict(run.cfg), sort_keys=False)
        self.writer.add_text("config", "    " + config.replace("\n", "\n    "), run.epoch)
        self.writer.add_text("header", "    " + json.dumps(dict(run.header), indent=1).replace("\n", "\n    "),
                             run.epoch)
        for metrics in run.history:  # epochs checkpointed but not yet in the event files (a kill in between)
            if metrics["epoch"] > logged:
                self._epoch(metrics)
        self.writer.flush()

    def _epoch(self, metrics: dict[str, Any]) -> None:
        for key, value in numeric(metrics).items():
            if key != "epoch":
                self.writer.add_scalar(f"epoch/{key}", value, metrics["epoch"])

    def on_epoch_end(self, run: RunView, metrics: dict[str, Any]) -> None:
        for step, values in self.take_steps():
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
        self._epoch(metrics)
        self.writer.flush()
        write_text(self.marker, str(metrics["epoch"]))

    def on_fit_end(self, run: RunView, summary: dict[str, Any]) -> None:
        if summary:
            table, scalars = final_table(summary)
            self.writer.add_text("final", table, run.epoch)
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, run.epoch)
        self.writer.close()


@CALLBACKS.register("wandb")
class WandbLogger(_StepBuffer):
    """A Weights & Biases run, ``mode`` offline by default (files under ``dir``, default the run directory; upload
    later with ``wandb sync``): per-epoch metrics and every ``every_steps``-th step's outputs against the global
    optimizer step, the resolved config as the run's config, the final table in its summary. A resumed pgdat run
    continues the same W&B run (its id is kept in ``<run>/wandb_id``)."""

    name, requires = "wandb", ("wandb",)
    install_hint = "pip install 'pgdat[wandb]' (or pip install wandb)"

    def __init__(self, project: str = "pgdat", mode: str = "offline", entity: str | None = None,
                 dir: str | None = None, every_steps: int = 50) -> None:  # noqa: A002 - wandb's own option name
        super().__init__(every_steps)
        if mode not in WANDB_MODES:
            raise PgdatError(f"callback 'wandb' option mode must be one of {', '.join(WANDB_MODES)} (got {mode!r}); "
                             "offline keeps everything local, e.g. mode: offline")
        self.project, self.mode, self.entity, self.dir, self.run = project, mode, entity, dir, None

    def on_fit_start(self, run: RunView) -> None:
        try:
            import wandb
        except ImportError:
            raise PgdatError(f"callback 'wandb' needs the wandb package: {self.install_hint}; or remove "
                             "{name: wandb} from train.callbacks") from None
        id_file = run.out / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else wandb.util.generate_id()
        write_text(id_file, run_id)
        self.run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, id=run_id, resume="allow",
                              dir=str(self.dir or run.out), name=run.cfg.name,
                              config=config_to_dict(run.cfg) | {"header": dict(run.header)})

    def on_epoch_end(self, run: RunView, metrics: dict[str, Any]) -> None:
        for step, values in self.take_steps():
            self.run.log(values, step=step)
        end = metrics["epoch"] * run.steps_per_epoch
        self.run.log({f"epoch/{k}": v for k, v in numeric(metrics).items()}, step=max(end, self.step))

    def on_fit_end(self, run: RunView, summary: dict[str, Any]) -> None:
        if summary:
            table, scalars = final_table(summary)
            self.run.summary.update(scalars | {"final_table": table})
        self.run.finish()
