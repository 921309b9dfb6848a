"""The ``bn_recalibrate`` callback: re-estimate best.pt/last.pt BatchNorm statistics after training and evaluate
them (the re-estimation itself is :func:`pgdat.analysis.bn_recalibrate.recalibrate_bn`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pgdat.analysis.bn_recalibrate import SOURCES, recal_batches, recalibrate_bn
from pgdat.errors import PgdatError
from pgdat.training.callbacks import CALLBACKS, Callback

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView


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

    def settings(self, run: RunView) -> dict[str, Any]:
        """The recalibration actually applied (batch size and attack resolved against the run's config)."""
        a = run.cfg.attack
        attack = self.attack or {"eps": a.eps, "step_size": a.step_size, "steps": a.steps, "norm": a.norm}
        return {"source": self.source, "n": min(self.n, len(run.data.train.y)), "seed": self.seed,
                "batch_size": self.batch_size or run.cfg.data.batch_size,
                "attack": dict(attack) if self.source != "clean" else None}

    def on_fit_end(self, run: RunView, summary: dict[str, Any]) -> None:
        from pgdat.checkpoint import atomic_write_bytes, load_checkpoint, model_from_checkpoint, save_checkpoint
        from pgdat.training.evaluation import evaluate_final, final_test_batch

        meta = self.settings(run)
        batches = recal_batches(run.data.train, meta["n"], meta["batch_size"], seed=self.seed,
                                device=run.device)
        x, y = final_test_batch(run)
        for which in ("best", "last"):
            path = run.out / f"{which}.pt"
            if not path.is_file():
                continue
            ckpt = load_checkpoint(path, map_location=run.device)
            model = model_from_checkpoint(ckpt, run.device, source=path)
            recalibrate_bn(model, batches, source=self.source, attack=meta["attack"], seed=self.seed)
            save_checkpoint({"model": model.state_dict(), "model_config": ckpt["model_config"],
                             "config": ckpt.get("config"), "epoch": ckpt.get("epoch"), "bn_recalibration": meta},
                            run.out / f"{which}_recal.pt")
            res = evaluate_final(run, model.eval(), x, y)
            summary[f"{which}_recal"] = {"accuracy": res.accuracy, "robust_accuracy": res.robust_accuracy,
                                         "bn_recalibration": meta}
        text = json.dumps(summary, indent=2)
        atomic_write_bytes(run.out / "final.json", lambda f: f.write(text.encode()))
