"""``pgdat repro induced`` (Tian & Mao): one PGD-AT run with periodic checkpoints, then for each checkpoint the
induced-distribution (IDE) test error of a fresh standard-trained model and the local dispersion of the attack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgdat.analysis.induced import plot_induced
from pgdat.experiments.base import register_experiment
from pgdat.experiments.claims import Claim
from pgdat.experiments.induced_students import analyze_run
from pgdat.experiments.plan import RunSpec, TrainedRun
from pgdat.experiments.robust_overfitting import CPU_AT, CPU_NOISE, noise_overrides
from pgdat.experiments.summary import write_summary

PRESETS = {
    # The robust-overfitting CPU preset's AT run (1,000 MNIST images, 20% label noise, eps 0.2, 40 epochs, decay at
    # 50%/75%), with checkpoints every 5 epochs, so the IDE curve sits next to a run whose robust accuracy falls.
    "cpu": ("default", CPU_AT + noise_overrides(CPU_NOISE) + ["train.checkpoint_every=5"],
            [5, 10, 15, 20, 25, 30, 35, 40],
            {"student_epochs": 20, "student_overrides": ["optim.name=adam", "optim.lr=0.001",
                                                         "optim.schedule=constant", "optim.weight_decay=0"],
             "sigma": 0.01, "pairs": 5, "n_dispersion": 100}),
    # The authors' CIFAR-10 protocol: PRN-18 PGD-AT 200 epochs (decay at 100, 150), checkpoints every 20 epochs,
    # students: PRN-18, SGD 0.1, 99 epochs (decay after 60 and 80), no augmentation; ELD with 250 pairs.
    "paper": ("cifar10/pgd_at_preact18", ["train.checkpoint_every=20", "optim.schedule=multistep",
                                          "optim.milestones=[100, 150]"],
              list(range(20, 201, 20)),
              {"student_epochs": 99, "student_overrides": ["optim.name=sgd", "optim.lr=0.1", "optim.weight_decay=5e-4",
                                                           "optim.schedule=multistep", "optim.milestones=[60, 80]"],
               "sigma": 0.01, "pairs": 250, "n_dispersion": 10000}),
}


SCALE = "CIFAR-10, PreActResNet-18 PGD-AT 200 epochs (checkpoints every 20), PreActResNet-18 students 99 epochs"
CLAIMS = (
    Claim("ide-error-rises", "the AT-induced distribution gets harder to generalize on: the IDE test error of the last "
          "checkpoint exceeds the first's", "ide_error[last checkpoint]", ">", "ide_error[first checkpoint]",
          "Tian & Mao, UAI 2025, Fig. 1 and 3 (notes induced-distribution 1, 5)", SCALE, 1.0, "%"),
    Claim("dispersion-rises", "the attack's local dispersion rises over training", "local_dispersion[last checkpoint]",
          ">", "local_dispersion[first checkpoint]", "Tian & Mao, UAI 2025, Fig. 2a (notes induced-distribution 5)",
          SCALE),
)


def metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """IDE test error (%) and local dispersion at the first and last analysed checkpoints."""
    first, last = min(rows, key=lambda r: r["epoch"]), max(rows, key=lambda r: r["epoch"])
    return {"ide_error[first checkpoint]": 100 * first["induced_test_error"],
            "ide_error[last checkpoint]": 100 * last["induced_test_error"],
            "local_dispersion[first checkpoint]": first["local_dispersion"],
            "local_dispersion[last checkpoint]": last["local_dispersion"]}


def plan(preset: str, seed: int = 0) -> list[RunSpec]:
    """One PGD-AT run with periodic checkpoints (``at_run``)."""
    recipe, overrides, _, _ = PRESETS[preset]
    return [RunSpec("at_run", recipe, (*overrides, "method.name=pgd_at"), seed)]


@register_experiment("induced", plan=plan, claims=CLAIMS, metrics=metrics,
                     title="AT-induced distribution over training", default_seeds={"cpu": 3})
def analyse(out: Path, runs: list[TrainedRun], *, preset: str, seed: int = 0) -> list[dict[str, Any]]:
    """For each analysed checkpoint of the AT run: a fresh student on its induced data (``out/students``), the IDE
    test error and the attack's local dispersion; ``induced.png``."""
    _, _, epochs, kw = PRESETS[preset]
    (at_run,) = runs
    rows = analyze_run(at_run.dir, epochs, out / "students", **kw)
    plot_induced(rows, out / "induced.png")
    write_summary(out, [{k: r[k] for k in ("epoch", "robust_test_acc", "induced_test_error", "local_dispersion")}
                        for r in rows], title="AT-induced distribution over training",
                  meta={"preset": preset, "sigma": kw["sigma"], "pairs": kw["pairs"],
                        "student_epochs": kw["student_epochs"], "plot": "induced.png",
                        "note": "PGD keeps x+delta in [0,1] (the authors' code does not clamp)"}, runs=[at_run.dir])
    return rows
