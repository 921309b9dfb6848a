"""``pgdat repro robust-overfitting``: PGD-AT with and without temporal ensembling, long enough to overfit
(Rice et al.'s best-vs-last gap; Dong et al.'s TE as the mitigation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgdat.analysis.overfitting import plot_robust_overfitting, robust_overfitting
from pgdat.experiments.base import register_experiment
from pgdat.experiments.claims import Claim
from pgdat.experiments.plan import RunSpec, TrainedRun
from pgdat.experiments.summary import write_summary

# The AT run of the CPU preset, shared with ``pgdat repro induced``: 1,000 MNIST images with 20% symmetric label noise,
# eps 0.2, PGD-5, SGD with Rice's piecewise decay at 50%/75% of 40 epochs. Clean-label MNIST does not overfit robustly
# at this size (measured: best - last 0.4 pp; 500 images at eps 0.3: 0.0 pp); label noise is the known amplifier of
# robust overfitting (Dong et al.), and TE is the paper's answer to it.
CPU_AT = ["data.n_train=1000", "data.val_size=300", "data.batch_size=64", "attack.eps=0.2", "attack.step_size=0.05",
          "attack.steps=5", "attack.eps_warmup_epochs=2", "optim.name=sgd", "optim.lr=0.05", "optim.momentum=0.9",
          "optim.weight_decay=5e-4", "optim.schedule=piecewise", "optim.milestones=[0.5, 0.75]", "train.epochs=40",
          "eval.attack=pgd-10", "eval.n_test=500", "eval.n_final=500", "train.progress=false"]
CPU_NOISE = 0.2

PRESETS = {
    # (recipe, overrides, TE schedule, runs as (method, label-noise rate)); TE ramps from 45% to 75% of training
    # (the paper's 90 -> 150 of 200 epochs, rescaled); the clean-label PGD-AT run is the control.
    "cpu": ("default", CPU_AT + ["eval.final_attacks=clean,pgd-20"], {"start_epoch": 18, "end_epoch": 30},
            [("pgd_at", CPU_NOISE), ("pgd_at_te", CPU_NOISE), ("pgd_at", 0.0)]),
    # Rice et al. PreAct ResNet-18 recipe; TE with the authors' schedule (start 90, end 150 of 200). Both runs craft
    # with eval-mode BatchNorm, as dongyp13/memorization-AT's PGD_TE and its PGD-AT baseline do (model.eval() while
    # attacking), so the pair differs only by TE; Rice's own recipe crafts in train mode.
    "paper": ("cifar10/pgd_at_preact18", ["attack.bn_mode=eval"], {"start_epoch": 90, "end_epoch": 150},
              [("pgd_at", 0.0), ("pgd_at_te", 0.0)]),
}


def noise_overrides(rate: float) -> list[str]:
    """The label-noise transform for ``rate`` (none at 0)."""
    return [f"data.transforms=[{{name: label_noise, rate: {rate}}}]"] if rate > 0 else []


RICE = "Rice et al., ICML 2020, Fig. 1 and 3 (notes methods-core: PRN-18 best 53.5% near epoch 106, last 45.6%)"
RICE_SCALE = "CIFAR-10, PreActResNet-18, 200 epochs, Linf 8/255, PGD-10, clean labels"
DONG = "Dong et al., ICLR 2022, abstract and TE (train_te.py; notes memorization 1, 6.3)"
DONG_SCALE = "CIFAR-10, ResNet-18, 200 epochs (TE from 90 to 150), Linf 8/255, PGD-10"
CLAIMS = (
    Claim("overfits-clean-labels", "PGD-AT's test robust accuracy falls by more than 1 pp from its best epoch to the "
          "last (robust overfitting) on clean labels", "gap[pgd_at, clean labels]", ">", 1.0, RICE, RICE_SCALE,
          0.0, "%"),
    Claim("overfits-label-noise", "with label noise (memorization), PGD-AT's best - last robust gap exceeds 1 pp",
          "gap[pgd_at, label noise]", ">", 1.0, DONG, DONG_SCALE, 0.0, "%"),
    Claim("te-narrows-gap", "temporal ensembling narrows the best - last robust gap", "gap[pgd_at]", ">",
          "gap[pgd_at_te]", DONG, DONG_SCALE, 1.0, "%"),
)


def metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Best - last test robust accuracy (pp): ``gap[M]`` for the PGD-AT / TE pair (same label noise), and PGD-AT's
    gap on clean labels and with label noise where the preset has those runs."""
    out = {}
    te = next((r for r in rows if r["method"] == "pgd_at_te"), None)
    for r in rows:
        gap = 100 * r["gap"]
        if te is not None and r["label_noise"] == te["label_noise"]:
            out[f"gap[{r['method']}]"] = gap
        if r["method"] == "pgd_at":
            out["gap[pgd_at, clean labels]" if r["label_noise"] == 0 else "gap[pgd_at, label noise]"] = gap
    return out


def planned_runs(preset: str) -> list[tuple[str, str, float, str, list[str]]]:
    """(run name, method, label-noise rate, recipe, overrides) of every run of ``preset``, in order."""
    recipe, overrides, te, runs = PRESETS[preset]
    te_params = "{" + ", ".join(f"{k}: {v}" for k, v in te.items()) + "}"
    method_overrides = {"pgd_at": ["method.name=pgd_at"],
                        "pgd_at_te": ["method.name=pgd_at_te", f"method.params={te_params}"]}
    return [(method if noise == 0 else f"{method}_noise{noise:g}", method, noise, recipe,
             overrides + method_overrides[method] + noise_overrides(noise)) for method, noise in runs]


def plan(preset: str, seed: int = 0) -> list[RunSpec]:
    """The runs of ``preset``, each with its method and label-noise rate as ``info``."""
    return [RunSpec(name, recipe, tuple(overrides), seed, info={"method": method, "label_noise": noise})
            for name, method, noise, recipe, overrides in planned_runs(preset)]


@register_experiment("robust-overfitting", plan=plan, claims=CLAIMS, metrics=metrics,
                     title="Robust overfitting: PGD-AT with and without temporal ensembling",
                     default_seeds={"cpu": 3})
def analyse(out: Path, runs: list[TrainedRun], *, preset: str, seed: int = 0) -> list[dict[str, Any]]:
    """Best, last and validation-selected robust test accuracy per run; ``robust_overfitting.png``."""
    rows, curves = [], {}
    for run in runs:
        trainer, method, noise = run.trainer, run.spec.info["method"], run.spec.info["label_noise"]
        s = robust_overfitting(trainer.history)
        curves[run.spec.name] = trainer.history
        rows.append({"method": method, "label_noise": noise, "best_robust_test": s["best_robust_test"],
                     "last_robust_test": s["last_robust_test"], "best_epoch": s["best_epoch"],
                     "gap": s["robust_overfitting_gap"], "val_selected_epoch": s.get("val_selected_epoch"),
                     "val_selected_robust_test": s.get("val_selected_robust_test"),
                     "last_train_robust": trainer.history[-1].get("train_robust_acc")})
    plot_robust_overfitting(curves, out / "robust_overfitting.png")
    write_summary(out, rows, title="Robust overfitting: PGD-AT with and without temporal ensembling",
                  meta={"preset": preset, "test_metric": "per-epoch PGD accuracy on the test subset (eval.attack)",
                        "plot": "robust_overfitting.png"}, runs=[r.dir for r in runs])
    return rows
