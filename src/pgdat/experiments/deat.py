"""``pgdat repro deat`` (Sun, Sinha, Zhang): PGD-AT over a (learning rate, batch size) grid, and DEAT at the base
setting; the robust generalisation gap against lr/B, and DEAT vs PGD-AT at the same cost (wall time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgdat.analysis.plots import plt
from pgdat.experiments.base import register_experiment
from pgdat.experiments.claims import Claim
from pgdat.experiments.plan import RunSpec, TrainedRun
from pgdat.experiments.summary import write_summary

COMMON = ["train.callbacks=[{name: train_eval, n: 1000}, {name: grad_noise, pairs: 2}]", "method.name=pgd_at"]
PRESETS = {
    # 1,000 MNIST images, eps 0.2, PGD-5; SGD momentum 0.9, constant lr, 12 epochs; base (lr 0.05, B 64).
    "cpu": ("default", ["data.n_train=1000", "data.val_size=300", "attack.eps=0.2", "attack.step_size=0.05",
                        "attack.steps=5", "attack.eps_warmup_epochs=2", "optim.name=sgd", "optim.momentum=0.9",
                        "optim.weight_decay=5e-4", "optim.schedule=constant", "train.epochs=12",
                        "eval.attack=pgd-10", "eval.n_test=500", "eval.n_final=500", "train.progress=false"],
            {"lr": [0.01, 0.05], "batch_size": [32, 128]}, {"lr": 0.05, "batch_size": 64}),
    # Bag-of-Tricks schedule (110 epochs, /10 at 100 and 105), PRN-18, eval-mode BN; the notes' grid (ours).
    "paper": ("cifar10/pgd_at_preact18", ["optim.schedule=multistep", "optim.milestones=[100, 105]",
                                          "train.epochs=110", "attack.bn_mode=eval"],
              {"lr": [0.025, 0.05, 0.1, 0.2], "batch_size": [64, 128, 256, 512]}, {"lr": 0.1, "batch_size": 128}),
}


def _row(name: str, trainer, lr: float, b: int) -> dict[str, Any]:
    hist = trainer.history
    best = max(hist, key=lambda m: m["test_robust_acc"])
    last = hist[-1]
    return {"method": name, "lr": lr, "batch_size": b, "lr_over_b": lr / b,
            "best_robust_test": best["test_robust_acc"], "last_robust_test": last["test_robust_acc"],
            "robust_gap": last["train_eval_robust_acc"] - last["test_robust_acc"],
            "grad_noise": last.get("grad_noise"), "wall_s": round(sum(m["time_train"] for m in hist), 1)}


SOURCE = "Sun, Sinha, Zhang, KDD 2023, abstract (notes deat 1, 6)"
SCALE = "CIFAR-10, PreActResNet-18, Bag-of-Tricks PGD-AT recipe (110 epochs), grid over lr and batch size"
CLAIMS = (
    Claim("gap-falls-with-lr-over-b", "a larger lr/B gives a smaller robust generalization gap (train - test robust)",
          "robust_gap[pgd_at, max lr/B]", "<", "robust_gap[pgd_at, min lr/B]", SOURCE, SCALE, 1.0, "%"),
    Claim("robust-rises-with-lr-over-b", "a larger lr/B gives a higher best robust test accuracy",
          "best_robust[pgd_at, max lr/B]", ">", "best_robust[pgd_at, min lr/B]", SOURCE, SCALE, 1.0, "%"),
    Claim("deat-beats-pgd-at", "DEAT beats PGD-AT in best robust test accuracy at the same lr, B and epochs",
          "best_robust[deat]", ">", "best_robust[pgd_at, base]", SOURCE, SCALE, 1.0, "%"),
)


def metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Robust gap and best robust test accuracy (%) of the grid's smallest and largest lr/B, the base PGD-AT run and
    DEAT (the last two rows)."""
    grid, (base, deat) = rows[:-2], rows[-2:]
    lo, hi = min(grid, key=lambda r: r["lr_over_b"]), max(grid, key=lambda r: r["lr_over_b"])
    out = {}
    for label, r in (("pgd_at, min lr/B", lo), ("pgd_at, max lr/B", hi), ("pgd_at, base", base), ("deat", deat)):
        out[f"robust_gap[{label}]"] = 100 * r["robust_gap"]
        out[f"best_robust[{label}]"] = 100 * r["best_robust_test"]
    return out


def plan(preset: str, seed: int = 0) -> list[RunSpec]:
    """PGD-AT over the (lr, batch size) grid, then PGD-AT and DEAT at the base setting (the last two runs)."""
    recipe, overrides, grid, base = PRESETS[preset]
    specs = [RunSpec(f"pgd_at_lr{lr}_b{b}", recipe, (*overrides, *COMMON, f"optim.lr={lr}", f"data.batch_size={b}"),
                     seed, info={"method": "pgd_at", "lr": lr, "batch_size": b})
             for lr in grid["lr"] for b in grid["batch_size"]]
    lr, b = base["lr"], base["batch_size"]
    for name, opt in (("pgd_at", ["optim.name=sgd"]), ("deat", ["optim.name=deat", "optim.deat_k=1.0"])):
        specs.append(RunSpec(f"{name}_base", recipe, (*overrides, *COMMON, *opt, f"optim.lr={lr}",
                                                      f"data.batch_size={b}"), seed,
                             info={"method": name, "lr": lr, "batch_size": b}))
    return specs


@register_experiment("deat", plan=plan, claims=CLAIMS, metrics=metrics, title="Robust generalisation vs lr/B, and DEAT")
def analyse(out: Path, runs: list[TrainedRun], *, preset: str, seed: int = 0) -> list[dict[str, Any]]:
    """Best robust test accuracy, robust gap (train - test) and gradient noise per run, in plan order; ``deat.png``."""
    rows = [_row(r.spec.info["method"], r.trainer, r.spec.info["lr"], r.spec.info["batch_size"]) for r in runs]
    _plot(rows, out / "deat.png")
    write_summary(out, rows, title="Robust generalisation vs lr/B, and DEAT", runs=[r.dir for r in runs],
                  meta={"preset": preset, "deat": "k=1, beta=0, no normalisation, heavy-ball 0.9 (notes' reading, "
                        "not verified against the paper)", "robust_gap": "train robust (1,000 fixed training "
                        "images, eval mode) - test robust, last epoch", "plot": "deat.png"})
    return rows


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    grid = [r for r in rows if r["method"] == "pgd_at"]
    for r in grid:
        a.scatter(r["lr_over_b"], 100 * r["robust_gap"], color="C0")
        b.scatter(r["lr_over_b"], 100 * r["best_robust_test"], color="C0")
    for r in rows:
        if r["method"] == "deat":
            a.scatter(r["lr_over_b"], 100 * r["robust_gap"], color="C3", marker="*", s=120, label="DEAT")
            b.scatter(r["lr_over_b"], 100 * r["best_robust_test"], color="C3", marker="*", s=120, label="DEAT")
    for ax, label in ((a, "robust gap, train - test (%)"), (b, "best robust test accuracy (%)")):
        ax.set_xscale("log")
        ax.set_xlabel("lr / batch size")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
