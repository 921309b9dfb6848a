"""Per-epoch evaluation (validation and test, clean + the configured attack) and the end-of-run evaluation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pgdat.attacks.specs import expand_specs
from pgdat.checkpoint import atomic_write_bytes, load_model
from pgdat.data.bundle import as_unit_float
from pgdat.eval import EvalResult, check_batch_fits, evaluate
from pgdat.eval.labels import cascade_label, per_epoch_label
from pgdat.eval.progress import AttackDoneProgress, PrintProgress
from pgdat.memory import EVAL_BATCH, FINAL_BATCH
from pgdat.training.distributed import all_reduce_sum, barrier
from pgdat.training.health import health_summary

if TYPE_CHECKING:  # pragma: no cover
    from pgdat.training.run_view import RunView
    from pgdat.training.trainer import Trainer


def _epoch_eval_options(trainer: Trainer) -> dict[str, Any]:
    """The keyword arguments of the per-epoch evaluation (clean + ``eval.attack``), shared by :func:`evaluate` and
    its preflight :func:`check_batch_fits` so that the preflight checks exactly what every epoch runs."""
    cfg = trainer.cfg
    return {"attacks": ["clean"] if cfg.eval.attack == "clean" else ["clean", cfg.eval.attack],
            "eps": cfg.attack.eps, "norm": cfg.attack.norm, "batch_size": cfg.eval.batch_size,
            "step_size": cfg.eval.step_size, "seed": cfg.train.seed, "precision": trainer.precision,
            "batch_option": EVAL_BATCH, "box": trainer.box}


def _split_accuracy(trainer: Trainer, model: nn.Module, x: torch.Tensor, y: torch.Tensor
                    ) -> tuple[float, float, torch.Tensor]:
    """(clean, robust) accuracy of ``model`` on (x, y), sharded over DDP ranks and reduced, and the per-class
    counts (3, C): clean correct, robust correct, examples."""
    info = trainer.dist
    xs, ys = x[info.rank::info.world], y[info.rank::info.world]
    res = evaluate(model, xs, ys, checks=False, **_epoch_eval_options(trainer))
    c = trainer.data.info.num_classes
    per_class = torch.stack([torch.bincount(ys[res.flags["clean"]], minlength=c),
                             torch.bincount(ys[res.robust], minlength=c), torch.bincount(ys, minlength=c)]).double()
    per_class = all_reduce_sum(per_class.to(trainer.device), info)
    n = per_class[2].sum().clamp_min(1)
    return (per_class[0].sum() / n).item(), (per_class[1].sum() / n).item(), per_class.cpu()


def class_groups(counts: torch.Tensor) -> dict[str, list[int]]:
    """Head / medium / tail classes by training count (descending): the first floor(C/3) are head, the last
    C - 1 - 2*floor(C/3) tail (REAT's tail set {2*floor(C/3)+1, ..., C-1} when classes are sorted by count)."""
    order = torch.argsort(counts.cpu(), descending=True, stable=True).tolist()
    third = len(order) // 3
    return {"head": order[:third], "medium": order[third:2 * third + 1], "tail": order[2 * third + 1:]}


def per_class_metrics(split: str, per_class: torch.Tensor, groups: dict[str, list[int]]) -> dict[str, Any]:
    """Per-class clean/robust accuracy lists and head/medium/tail group accuracies from (3, C) counts.

    A class (or group) with no evaluated example gets None (JSON null), not 0.0: with a small ``eval.n_test`` on
    many classes some classes can be absent, and a 0% would read as a class the model always gets wrong.
    """
    hits_clean, hits_robust, counts = per_class.cpu().tolist()  # one transfer; the rest is host arithmetic
    out: dict[str, Any] = {}
    for kind, hits in (("clean", hits_clean), ("robust", hits_robust)):
        out[f"per_class_{split}_{kind}_acc"] = [h / n if n else None for h, n in zip(hits, counts, strict=True)]
        for name, classes in groups.items():
            if classes:
                n = sum(counts[c] for c in classes)
                out[f"{split}_{name}_{kind}_acc"] = sum(hits[c] for c in classes) / n if n else None
    return out


def preflight_evaluation(trainer: Trainer, model: nn.Module) -> None:
    """Before the first epoch: the per-epoch evaluation attack on one full ``eval.batch_size`` batch of the first
    evaluated split, so an evaluation batch that does not fit fails before any training, not after the first epoch
    (PgdatError naming eval.batch_size and the largest size that fits)."""
    data, cfg = trainer.data, trainer.cfg
    split = next((s for s in (data.val, data.test) if s is not None and len(s.y)), None)
    if split is None:
        return
    n = min(cfg.eval.batch_size, len(split.y))
    x, y = as_unit_float(split.x[:n].to(trainer.device)), split.y[:n].to(trainer.device)
    check_batch_fits(model, x, y, **_epoch_eval_options(trainer))


def evaluate_splits(trainer: Trainer, model: nn.Module, prefix: str = "") -> dict[str, Any]:
    """``{prefix}val_clean_acc``, ``val_robust_acc``, ``test_clean_acc``, ``test_robust_acc`` for this epoch, and
    ``robust_acc_by``: the per-epoch attack that produced the robust ones (``PGD-10, per-epoch``)."""
    data, cfg, out = trainer.data, trainer.cfg, {}
    splits = [("val", data.val), ("test", data.test)]
    for name, split in splits:
        if split is None or len(split.y) == 0:
            continue
        n = cfg.eval.n_test if name == "test" and cfg.eval.n_test else len(split.y)
        x = as_unit_float(split.x[:n].to(trainer.device))
        clean, robust, per_class = _split_accuracy(trainer, model, x, split.y[:n].to(trainer.device))
        out[f"{prefix}{name}_clean_acc"], out[f"{prefix}{name}_robust_acc"] = clean, robust
        out["robust_acc_by"] = per_epoch_label(cfg.eval.attack)  # the curve's attack: not the number to quote
        if name == "test" and not prefix:
            out |= per_class_metrics("test", per_class, class_groups(trainer.class_counts))
    return out


def final_test_batch(run: RunView) -> tuple[torch.Tensor, torch.Tensor]:
    """The end-of-run evaluation's examples: the first ``eval.n_final`` test images (n, C, H, W) in [0,1] and their
    labels (n,), on the run's device."""
    test = run.data.test
    n = run.cfg.eval.n_final or len(test.y)
    return as_unit_float(test.x[:n].to(run.device)), test.y[:n].to(run.device)


def evaluate_final(run: RunView, model: nn.Module, x: torch.Tensor, y: torch.Tensor, which: str | None = None
                   ) -> EvalResult:
    """``model`` under ``eval.final_attacks`` on (x, y) as the end-of-run evaluation runs it: the run's threat
    model (eps, norm, box), in batches of ``eval.final_batch_size`` (250 by default, the reference AutoAttack's, so
    that a cascade of its components gives the reference's plain run point by point; halved on running out of
    memory, with a warning), with fp32 attacks on the model as loaded from its checkpoint (contiguous: no
    channels_last, whose convolutions round differently), as a plain reference run on it would; sharded over
    the ranks under torchrun; with ``which`` (best, last) resumable from ``RUN/final_{which}.state`` (written after
    every batch, removed at the end); on stderr (main process only) a progress line per batch when
    ``train.progress`` is on, else one line per finished attack."""
    cfg = run.cfg
    printer = PrintProgress if cfg.train.progress else AttackDoneProgress
    return evaluate(model, x, y, attacks=cfg.eval.final_attacks, eps=cfg.attack.eps, norm=cfg.attack.norm,
                    batch_size=cfg.eval.final_batch_size, step_size=cfg.eval.step_size, seed=cfg.train.seed,
                    on_oom="halve", batch_option=FINAL_BATCH, box=run.box,
                    progress=printer(prefix=f"[final {which or 'model'}] ") if run.dist.is_main else None,
                    state_path=run.out / f"final_{which}.state" if which else None, distributed=True)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two models hold bit-identical parameters and buffers (best.pt == last.pt when the best epoch is the
    last); one host sync per tensor, once per run."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def final_evaluation(trainer: Trainer) -> dict[str, Any]:
    """Evaluate best.pt and last.pt with ``eval.final_attacks`` on the first ``eval.n_final`` test images;
    write ``final.json`` (main process) and return it. Every rank takes part (the points are sharded over ranks
    under torchrun). ``robust_accuracy_by`` names the attacks behind each robust accuracy."""
    cfg = trainer.cfg
    barrier(trainer.dist)  # best.pt / last.pt are written by the main process
    x, y = final_test_batch(trainer.view)
    summary: dict[str, Any] = {"n": int(y.numel()), "eps": cfg.attack.eps, "norm": cfg.attack.norm,
                               "attacks": cfg.eval.final_attacks, "cascade": expand_specs(cfg.eval.final_attacks),
                               "robust_accuracy_by": cascade_label(cfg.eval.final_attacks),
                               "per_epoch_robust_by": per_epoch_label(cfg.eval.attack),
                               "best_epoch": trainer.best["epoch"], "selected_by": trainer.best["selected_by"],
                               "epochs": trainer.epoch}
    models: dict[str, nn.Module] = {}
    for which in ("best", "last"):
        path = trainer.out / f"{which}.pt"
        if not path.exists():
            continue
        models[which] = load_model(path, trainer.device)
        if which == "last" and "best" in summary and _same_weights(models["best"], models["last"]):
            # the best epoch is the last one: the same weights, the same seeded attacks, the same numbers
            summary["last"] = {**summary["best"], "same_weights_as": "best"}
            continue
        res = evaluate_final(trainer.view, models[which], x, y, which)
        summary[which] = {"accuracy": res.accuracy, "robust_accuracy": res.robust_accuracy,
                          "per_class": res.per_class(y, trainer.data.info.num_classes),
                          "seconds": res.seconds, "warnings": res.warnings}
    summary["train_seconds"] = sum(m["time_train"] for m in trainer.history)
    summary["eval_seconds"] = sum(m["time_eval"] for m in trainer.history)
    summary["health"] = health_summary(trainer.view)  # the health check's flags (training/health.py)
    if trainer.dist.is_main:
        text = json.dumps(summary, indent=2)
        atomic_write_bytes(trainer.out / "final.json", lambda f: f.write(text.encode()))
    return summary
