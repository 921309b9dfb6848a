"""The trainer's health check: flag a run whose clean accuracy stays at chance or whose training loss diverges.

A flag never stops training (the run's numbers may still be wanted); it is written where a reader looks: each
epoch's ``health_flags`` in ``metrics.jsonl`` (empty list: healthy), a ``HEALTH:`` console line when a flag first
appears, and ``final.json["health"]`` (``{"flags": [...], "chance": ...}``, written with the final evaluation, in the
same atomic write), which ``pgdat repro`` summaries repeat, ``pgdat compare`` shows in its ``health`` column
(``ok`` when unflagged) and ``pgdat report`` shows in that column and at the top of the run's section.

- **At chance:** over the last ``patience`` epochs (all epochs when the run has fewer), the clean accuracy stayed
  within ``margin`` of chance; the run (``final.json``, reports) keeps this flag only if it still holds at the last
  epoch, so a slow start that then learned is warned about on the console but not flagged. Chance is the share of
  the split's largest class (a constant predictor's accuracy: 10% on balanced 10-class data, more on long-tailed
  data). The accuracy is the training batches' clean accuracy when the method reports it (``train_clean_acc``),
  else the validation split's (``val_clean_acc``).
- **Diverged:** ``|train_loss|`` exceeds ``factor`` times the larger of ln(C) (the loss of a uniform prediction) and
  the smallest ``|train_loss|`` of any earlier epoch. ``|.|`` catches a loss that runs off to minus infinity too
  (a sign error makes a loss unbounded below). Non-finite losses already stop the trainer with an error.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from pgdat.training.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView

PATIENCE = 3  # epochs
MARGIN = 0.02  # accuracy, as a fraction
FACTOR = 4.0


def chance_rate(labels: torch.Tensor) -> float:
    """The accuracy of always predicting the most frequent class of ``labels`` (N,) (a fraction in (0, 1])."""
    counts = torch.bincount(labels.flatten().long())
    return float(counts.max()) / max(int(labels.numel()), 1)


def at_chance(history: list[dict[str, Any]], chance: dict[str, float], total_epochs: int,
              patience: int = PATIENCE, margin: float = MARGIN) -> str | None:
    """A flag if the clean accuracy stayed within ``margin`` of chance over the last ``patience`` epochs, else None.

    chance: split ("train", "val") -> its chance rate. ``total_epochs``: the run's configured epochs (a shorter run
    is judged over all of its epochs, once they are done)."""
    window = min(patience, total_epochs)
    if len(history) < window or window < 1:
        return None
    for split in ("train", "val"):
        accs = [m.get(f"{split}_clean_acc") for m in history[-window:]]
        if split in chance and all(a is not None for a in accs):
            top = max(accs)  # type: ignore[type-var]
            if top <= chance[split] + margin:
                return (f"clean {split} accuracy stayed at chance: at most {100 * top:.1f}% over the last {window} "
                        f"epoch(s), chance {100 * chance[split]:.1f}% (the largest class's share)")
            return None
    return None


def diverged(history: list[dict[str, Any]], num_classes: int, factor: float = FACTOR) -> str | None:
    """A flag if the latest epoch's ``|train_loss|`` exceeds ``factor`` x max(ln C, smallest earlier |loss|)."""
    if not history or history[-1].get("train_loss") is None:
        return None
    loss = float(history[-1]["train_loss"])
    earlier = [abs(float(m["train_loss"])) for m in history[:-1] if m.get("train_loss") is not None]
    ref = max(math.log(max(num_classes, 2)), min(earlier, default=0.0))
    if abs(loss) > factor * ref:
        return (f"training loss diverged: epoch {history[-1].get('epoch', len(history))} loss {loss:.4g}, more than "
                f"{factor:g} x {ref:.4g} (max of ln C and the smallest earlier |loss|)")
    return None


class HealthCheck(Callback):
    """Flags unhealthy runs (see the module docstring); attached to every Trainer."""

    def __init__(self) -> None:
        self.flags: list[str] = []
        self.chance: dict[str, float] = {}

    def on_fit_start(self, run: RunView) -> None:
        data = run.data
        self.chance = {"train": chance_rate(data.train.y)}
        if data.val is not None:
            self.chance["val"] = chance_rate(data.val.y)
        self.flags = first_of_each_kind(run.history)

    def on_epoch_metrics(self, run: RunView, metrics: dict[str, Any]) -> None:
        if not self.chance:
            self.on_fit_start(run)
        history = [*run.history, metrics]
        found = [f for f in (at_chance(history, self.chance, run.cfg.train.epochs),
                             diverged(history, run.data.info.num_classes)) if f]
        metrics["health_flags"] = found
        kinds = {kind(f) for f in self.flags}  # the console warns once per kind
        for f in found:
            if kind(f) in kinds:
                continue
            self.flags.append(f)
            kinds.add(kind(f))
            if run.dist.is_main:
                print(f"HEALTH: {run.out}: {f}", flush=True)

    def on_fit_end(self, run: RunView, summary: dict[str, Any]) -> None:
        if not run.dist.is_main:
            return
        flags = run_flags(run.history)
        if flags:
            print(f"HEALTH: {run.out}: run flagged: {'; '.join(flags)}", flush=True)
        left = [kind(f) for f in self.flags if kind(f) not in {kind(g) for g in flags}]
        if left:  # an at-chance warning printed during training that no longer holds
            print(f"HEALTH: {run.out}: no longer flagged at the last epoch: {'; '.join(left)}", flush=True)


def kind(flag: str) -> str:
    """A flag's kind: its text before the first ':' (e.g. "training loss diverged")."""
    return flag.split(":")[0]


def first_of_each_kind(history: list[dict[str, Any]]) -> list[str]:
    """The run's flags: the first flag of each kind over the epochs' ``health_flags``, in order."""
    flags: list[str] = []
    for m in history:
        for f in m.get("health_flags", []):
            if kind(f) not in {kind(g) for g in flags}:
                flags.append(f)
    return flags


AT_CHANCE = "stayed at chance"  # in the kind (the text before ':') of every at-chance flag


def run_flags(history: list[dict[str, Any]]) -> list[str]:
    """The run's flags over its epochs' ``health_flags``: the first of each kind, except that an at-chance flag is
    kept only when the run is still at chance at its last epoch (then with that epoch's text). A run that sat at
    chance for its first epochs and then learned (random labels fitted slowly) is not flagged; a loss that ran away
    once is, even if it came back."""
    last = {kind(f): f for f in history[-1].get("health_flags", [])} if history else {}
    flags = []
    for f in first_of_each_kind(history):
        if AT_CHANCE not in kind(f):
            flags.append(f)
        elif kind(f) in last:
            flags.append(last[kind(f)])
    return flags


def recorded_flags(final: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """A finished or running run's flags as its files record them: ``final["health"]["flags"]`` (final.json), else
    (no final evaluation yet, or a final.json from before the health check) :func:`run_flags` of ``history`` (the
    epochs of metrics.jsonl)."""
    health = final.get("health")
    flags = health.get("flags") if isinstance(health, dict) else run_flags(history)
    return [str(f) for f in flags] if isinstance(flags, list) else []


def health_summary(run: RunView) -> dict[str, Any]:
    """``final.json["health"]``: the run's flags (from its history, so a resumed run keeps earlier ones) and the
    chance rates they were judged against."""
    data = run.data
    chance = {"train": chance_rate(data.train.y)} | ({"val": chance_rate(data.val.y)} if data.val is not None else {})
    return {"flags": run_flags(run.history), "chance": chance}
