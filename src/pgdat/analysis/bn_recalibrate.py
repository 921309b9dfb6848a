"""Post-hoc BatchNorm re-estimation (reading R3 of the NTK-AT notes, not verified against Li et al.): replace the
running statistics, which AT accumulates on adversarial (and, with train-mode crafting, intermediate PGD) batches,
by a cumulative average (``momentum=None``) over clean, adversarial or mixed batches.

:func:`recalibrate_bn` works on any model; the ``bn_recalibrate`` callback (:class:`BNRecalibrate`) applies it to
a run's best.pt and last.pt after training and reports both next to the unrecalibrated results in final.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.training.callbacks import CALLBACKS, Callback

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.trainer import Trainer

SOURCES = ("clean", "adv", "mixed")
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, source: str = "clean",
                   attack: dict[str, Any] | None = None, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's running mean/var as the cumulative average over ``batches`` of (x (B, C, H, W)
    in [0, 1], y (B,)); ``adv``/``mixed`` craft PGD examples with ``attack`` (pgd kwargs) in eval mode first (mixed:
    clean and adversarial halves concatenated). Restores the model's mode and each BN's momentum; returns the
    number of images used."""
    if source not in SOURCES:
        raise PgdatError(f"source must be one of {', '.join(SOURCES)} (got '{source}')")
    if source != "clean" and not attack:
        raise PgdatError(f"source='{source}' needs attack=dict(eps=..., step_size=..., steps=...)")
    bns = [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]
    if not bns:
        raise PgdatError("the model has no BatchNorm layer with running statistics to recalibrate")
    was_training, momenta = model.training, [m.momentum for m in bns]
    g, n = torch.Generator().manual_seed(seed), 0
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
        for x, y in batches:
            if source != "clean":
                from pgdat.attacks import pgd

                model.eval()
                with torch.enable_grad():
                    x_adv = pgd(model, x, y, generator=g, **attack)
                x = x_adv if source == "adv" else torch.cat([x, x_adv])
            model.train()
            model(x)
            n += len(x)
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)
    if n == 0:
        raise PgdatError("recalibrate_bn got no batches")
    return n


def recal_batches(split: Any, n: int, batch_size: int, *, seed: int = 0, device: str | torch.device = "cpu"
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Full batches (x (batch_size, C, H, W) in [0,1], y) of ``n`` images of ``split`` drawn without replacement
    by ``seed``, no augmentation; a short last batch is dropped unless it is the only one (the cumulative average
    weights every batch equally)."""
    from pgdat.data.bundle import as_unit_float

    n = min(n, len(split.y))
    pos = torch.randperm(len(split.y), generator=torch.Generator().manual_seed(seed))[:n]
    starts = range(0, max(n - batch_size, 0) + 1, batch_size)
    return [(as_unit_float(split.x[pos[i:i + batch_size]].to(device)), split.y[pos[i:i + batch_size]].to(device))
            for i in starts]


@CALLBACKS.register("bn_recalibrate")
class BNRecalibrate(Callback):
    """After training (``on_fit_end``, once final.json is written): for best.pt and last.pt, re-estimate every
    BatchNorm's running statistics with :func:`recalibrate_bn` on ``n`` training images (batches of ``batch_size``,
    0 = ``data.batch_size``), save ``RUN/{best,last}_recal.pt`` and evaluate them with ``eval.final_attacks`` on the
    final-evaluation test images; final.json gains ``best_recal``/``last_recal`` (accuracy, robust_accuracy and the
    recalibration settings). ``source``: clean | adv | mixed; adv/mixed craft PGD with ``attack`` (pgd kwargs;
    default: the run's training attack, eps/step_size/steps/norm) in eval mode. Off unless configured."""

    def __init__(self, source: str = "clean", n: int = 1000, batch_size: int = 0, seed: int = 0,
                 attack: dict[str, Any] | None = None) -> None:
        if source not in SOURCES:
            raise PgdatError(f"bn_recalibrate source must be one of {', '.join(SOURCES)} (got '{source}')")
        if n < 2 or batch_size < 0 or batch_size == 1:
            raise PgdatError(f"bn_recalibrate needs n >= 2 and batch_size 0 (data.batch_size) or >= 2 (got n={n}, "
                             f"batch_size={batch_size})")
        self.source, self.n, self.batch_size, self.seed, self.attack = source, n, batch_size, seed, attack

    def settings(self, trainer: Trainer) -> dict[str, Any]:
        """The recalibration actually applied (batch size and attack resolved against the run's config)."""
        a = trainer.cfg.attack
        attack = self.attack or {"eps": a.eps, "step_size": a.step_size, "steps": a.steps, "norm": a.norm}
        return {"source": self.source, "n": min(self.n, len(trainer.data.train.y)), "seed": self.seed,
                "batch_size": self.batch_size or trainer.cfg.data.batch_size,
                "attack": dict(attack) if self.source != "clean" else None}

    def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        from pgdat.checkpoint import atomic_write_bytes, load_checkpoint, model_from_checkpoint, save_checkpoint
        from pgdat.training.evaluation import evaluate_final, final_test_batch

        meta = self.settings(trainer)
        batches = recal_batches(trainer.data.train, meta["n"], meta["batch_size"], seed=self.seed,
                                device=trainer.device)
        x, y = final_test_batch(trainer)
        for which in ("best", "last"):
            path = trainer.out / f"{which}.pt"
            if not path.is_file():
                continue
            ckpt = load_checkpoint(path, map_location=trainer.device)
            model = model_from_checkpoint(ckpt, trainer.device, source=path)
            recalibrate_bn(model, batches, source=self.source, attack=meta["attack"], seed=self.seed)
            save_checkpoint({"model": model.state_dict(), "model_config": ckpt["model_config"],
                             "config": ckpt.get("config"), "epoch": ckpt.get("epoch"), "bn_recalibration": meta},
                            trainer.out / f"{which}_recal.pt")
            res = evaluate_final(trainer, model.eval(), x, y)
            summary[f"{which}_recal"] = {"accuracy": res.accuracy, "robust_accuracy": res.robust_accuracy,
                                         "bn_recalibration": meta}
        text = json.dumps(summary, indent=2)
        atomic_write_bytes(trainer.out / "final.json", lambda f: f.write(text.encode()))
