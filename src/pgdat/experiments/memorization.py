"""``pgdat repro memorization`` (Dong et al.): PGD-AT and TRADES on completely random labels; can each fit the
training set adversarially, and how do their gradient norms behave?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgdat.analysis.plots import plt
from pgdat.experiments.base import register_experiment
from pgdat.experiments.claims import Claim
from pgdat.experiments.common import per_epoch
from pgdat.experiments.plan import RunSpec, TrainedRun
from pgdat.experiments.summary import write_summary

METHODS = {"pgd_at": [], "trades": ["method.params={beta: 6.0}"]}
COMMON = ["data.transforms=[{name: label_noise, rate: 1.0}]", "data.augment=none",
          "train.callbacks=[{name: grad_norm}, {name: train_eval, n: 1000}]"]
PRESETS = {
    # 1,000 random-label MNIST images, eps 0.1: small enough for 2 CPU cores in < 15 min for both methods.
    "cpu": ("default", ["data.n_train=1000", "data.val_size=200", "data.batch_size=128", "attack.eps=0.1",
                        "attack.step_size=0.025", "attack.steps=5", "attack.eps_warmup_epochs=0",
                        "optim.name=adam", "optim.lr=0.001", "optim.schedule=constant", "optim.weight_decay=0",
                        "train.epochs=40", "eval.attack=pgd-5", "eval.n_test=200", "eval.final_attacks=clean,pgd-10",
                        "eval.n_final=500", "train.progress=false"]),
    # The authors' protocol: CIFAR-10, WRN-28-10, no augmentation, SGD 0.1 x0.1 every 100 epochs, 300 epochs, wd 0,
    # PGD-10 eps 8/255 step 2/255 crafted in eval-mode BN. StepLR(100) stepped per epoch decays from (1-based)
    # epochs 101 and 201: pgdat's multistep milestones are the first decayed epochs (docs/fidelity.md).
    "paper": ("cifar10/pgd_at_preact18", ["model.name=wrn28_10", "data.val_size=1000", "attack.bn_mode=eval",
                                          "optim.schedule=multistep", "optim.milestones=[101, 201]",
                                          "optim.weight_decay=0", "train.epochs=300", "eval.attack=pgd-10"]),
}
KEYS = {"train_clean_acc": "train_eval_clean_acc", "train_robust_acc": "train_eval_robust_acc",
        "grad_norm_mean": "grad_norm_mean", "grad_norm_var": "grad_norm_var",
        "test_clean_acc": "test_clean_acc", "test_robust_acc": "test_robust_acc"}


SOURCE = "Dong et al., ICLR 2022, abstract; which method converges is the notes' unverified reading (memorization 2, 6)"
SCALE = "CIFAR-10 with 100% random labels, WRN-28-10, no augmentation, 300 epochs, Linf 8/255 PGD-10"
CLAIMS = (
    Claim("not-all-converge", "not all AT methods fit random labels: TRADES reaches a higher training robust accuracy "
          "than PGD-AT", "train_robust[trades]", ">", "train_robust[pgd_at]", SOURCE, SCALE, 1.0, "%"),
    Claim("trades-memorizes", "TRADES memorizes random labels: its training clean accuracy ends above 20% (twice "
          "chance)", "train_clean[trades]", ">", 20.0, SOURCE, SCALE, 0.0, "%"),
)


def metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Final training clean / robust accuracy (%) against the random labels, per method."""
    out = {}
    for r in rows:
        if r["epoch"] == "final":
            out[f"train_clean[{r['method']}]"] = 100 * r["train_clean_acc"]
            out[f"train_robust[{r['method']}]"] = 100 * r["train_robust_acc"]
    return out


def plan(preset: str, seed: int = 0) -> list[RunSpec]:
    """One random-label run per method, in the method's folder."""
    recipe, overrides = PRESETS[preset]
    return [RunSpec(method, recipe, (*overrides, *COMMON, f"method.name={method}", *extra), seed,
                    info={"method": method}) for method, extra in METHODS.items()]


@register_experiment("memorization", plan=plan, claims=CLAIMS, metrics=metrics,
                     title="Random-label adversarial training (memorization)", default_seeds={"cpu": 3})
def analyse(out: Path, runs: list[TrainedRun], *, preset: str, seed: int = 0) -> list[dict[str, Any]]:
    """Per-epoch training accuracy on the random labels and gradient norms per method (plus a ``final`` row each);
    ``memorization.png``."""
    rows, curves = [], {}
    for run in runs:
        method = run.spec.info["method"]
        hist = per_epoch(run.trainer.history, KEYS)
        curves[method] = hist
        rows += [{"method": method, **r} for r in hist]
        rows.append({"method": method, **{**hist[-1], "epoch": "final"}})
    _plot(curves, out / "memorization.png")
    write_summary(out, rows, title="Random-label adversarial training (memorization)",
                  meta={"preset": preset, "labels": "100% symmetric noise (random)", "plot": "memorization.png"},
                  runs=[r.dir for r in runs])
    return rows


def _plot(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (method, hist) in enumerate(curves.items()):
        ep = [r["epoch"] for r in hist]
        a.plot(ep, [100 * r["train_robust_acc"] for r in hist], "-", color=f"C{i}", label=f"{method} robust")
        a.plot(ep, [100 * r["train_clean_acc"] for r in hist], "--", color=f"C{i}", label=f"{method} clean")
        b.plot(ep, [r["grad_norm_mean"] for r in hist], color=f"C{i}", label=method)
    a.set_title("training accuracy on random labels")
    a.set_xlabel("epoch")
    a.set_ylabel("%")
    a.legend(fontsize=8)
    b.set_title("mean squared gradient norm per epoch")
    b.set_yscale("log")
    b.set_xlabel("epoch")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
