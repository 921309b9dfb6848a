"""``pgdat repro ntk``: standard vs PGD-AT training of one architecture with an empirical-NTK snapshot every epoch
(trace kernel on a fixed class-balanced training probe, BatchNorm in eval mode); kernel velocity and spectrum over
epochs (the kernel-learning-then-lazy picture of Li et al. / Tsilivis & Kempe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgdat.analysis.ntk import analyze_runs
from pgdat.experiments.base import register_experiment
from pgdat.experiments.claims import Claim
from pgdat.experiments.plan import RunSpec, TrainedRun
from pgdat.experiments.summary import write_summary

PRESETS: dict[str, dict[str, Any]] = {
    # mnist5k, small_cnn (P = 0.65 M), 1,000 training images, 6 epochs of Adam; 32 probes x 10 logits;
    # PGD-AT eps 0.3 with PGD-3 (step 0.25).
    "cpu": {"recipe": "default", "probe": 32, "kind": "trace", "adv_probe": None,
            "base": ["data.n_train=1000", "data.val_size=200", "train.epochs=6", "attack.steps=3",
                     "attack.step_size=0.25", "attack.eps_warmup_epochs=1", "eval.attack=pgd-3", "eval.n_test=200",
                     "eval.final_attacks=clean,pgd-10", "eval.n_final=500", "train.progress=false"],
            "methods": ["standard", "pgd_at"]},
    # CIFAR-10 PreAct-ResNet-18 PGD-AT recipe; 250 probes (Tsilivis & Kempe), trace kernel, adversarial probes too.
    "paper": {"recipe": "cifar10/pgd_at_preact18", "probe": 250, "kind": "trace",
              "adv_probe": {"eps": 8 / 255, "step_size": 2 / 255, "steps": 10}, "base": [],
              "methods": ["standard", "pgd_at"]},
}


def snapshot_spec(name: str, recipe: str, overrides: tuple[str, ...], seed: int, *, probe: int, kind: str,
                  adv: dict[str, Any] | None = None, **info: Any) -> RunSpec:
    """A run with an ``ntk_snapshot`` callback every epoch (besides the Trainer's defaults; not in its config): a
    fresh start removes the old run's NTK snapshots (``ntk/``)."""
    snap = {"name": "ntk_snapshot", "every": 1, "probe": probe, "kind": kind, "adv": adv}
    return RunSpec(name, recipe, overrides, seed, callbacks=(snap,), stale=("ntk",), info=info)


def plan(preset: str, seed: int = 0) -> list[RunSpec]:
    """One run per method in ``runs/METHOD``, each with NTK snapshots every epoch."""
    p = PRESETS[preset]
    return [snapshot_spec(f"runs/{method}", p["recipe"], (*p["base"], f"method.name={method}"), seed,
                          probe=p["probe"], kind=p["kind"], adv=p["adv_probe"]) for method in p["methods"]]


SOURCE = "Li et al., arXiv 2312.02236, introduction: kernel learning, then lazy training (notes ntk-at 1)"
SCALE = "CIFAR-10 (the paper's models and budgets are not verified in the notes)"
CLAIMS = tuple(
    Claim(f"kernel-settles-{m}", f"{m}: the NTK moves fast early and settles (kernel distance between consecutive "
          "epochs falls from the first epoch to the last)", f"kernel_velocity[{m}, first epoch]", ">",
          f"kernel_velocity[{m}, last epoch]", SOURCE, SCALE)
    for m in ("standard", "pgd_at"))


def metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Kernel distance to the previous snapshot after the first and the last epoch, per method."""
    out = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        moved = [r for r in rows if r["method"] == m and r["kernel_distance_to_prev"] is not None]
        if moved:
            out[f"kernel_velocity[{m}, first epoch]"] = moved[0]["kernel_distance_to_prev"]
            out[f"kernel_velocity[{m}, last epoch]"] = moved[-1]["kernel_distance_to_prev"]
    return out


@register_experiment("ntk", plan=plan, claims=CLAIMS, metrics=metrics,
                     title="Empirical NTK over clean vs adversarial training", default_seeds={"cpu": 3})
def analyse(out: Path, runs: list[TrainedRun], *, preset: str, seed: int = 0) -> list[dict[str, Any]]:
    """Kernel velocity, top eigenvalue and effective rank per snapshot of each run; ``ntk.json``, ``ntk.png``."""
    p = PRESETS[preset]
    dirs = [r.dir for r in runs]
    curves = analyze_runs(dirs, out)
    rows = [{"method": method, **{k: r[k] for k in ("epoch", "kernel_distance_to_prev", "top_eigenvalue",
                                                      "effective_rank")}}
            for method, rs in curves.items() for r in rs]
    write_summary(out, rows, title="Empirical NTK over clean vs adversarial training",
                  meta={"preset": preset, "kernel": p["kind"], "probe": f"{p['probe']} class-balanced training images",
                        "bn_mode": "eval", "snapshot_every": "1 epoch (epoch 0 = init)",
                        "kernel_distance": "1 - <K1,K2>_F / (|K1|_F |K2|_F)", "plot": "ntk.png"}, runs=dirs)
    return rows
