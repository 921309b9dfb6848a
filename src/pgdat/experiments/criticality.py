"""``pgdat repro criticality`` (Gavrikov et al. 2024): standard vs PGD-AT (two or more eps) vs TRADES runs of one
architecture, then the criticality of every conv/linear layer (re-randomisation, fixed test subset, 3 trials) on
clean inputs and on PGD inputs of one common radius."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgdat.analysis.criticality import checkpoint_criticality, format_table, load_subset, plot_heatmap
from pgdat.experiments.base import register_experiment
from pgdat.experiments.claims import Claim
from pgdat.experiments.plan import RunSpec, TrainedRun
from pgdat.experiments.summary import write_summary

# Mnist5k CPU preset: small_cnn, 1,000 training images, 4 epochs of Adam (cosine), PGD-3 with step 2.5 eps / 3.
CPU_BASE = ["data.n_train=1000", "data.val_size=200", "train.epochs=4", "attack.eps_warmup_epochs=1",
            "eval.attack=pgd-3", "eval.n_test=200", "eval.final_attacks=clean,pgd-10", "eval.n_final=500",
            "train.progress=false"]
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"recipe": "default", "base": CPU_BASE, "data": "mnist5k", "n": 500, "trials": 3, "adv_eps": 0.1,
            "adv_steps": 10, "norm": "linf",
            "runs": [("standard", 0.0), ("pgd_at", 0.1), ("pgd_at", 0.3), ("trades", 0.3)]},
    # Closer to the paper (issue 24): a residual net (ResNet-18 layout, width 8: 20 conv layers + head) on the same
    # embedded data, standard vs PGD-AT at three eps. Same training budget as "cpu".
    "cpu-resnet": {"recipe": "default", "base": CPU_BASE + ["model.name=resnet18", "model.kwargs={width: 8}"],
                   "data": "mnist5k", "n": 500, "trials": 3, "adv_eps": 0.1, "adv_steps": 10, "norm": "linf",
                   "runs": [("standard", 0.0), ("pgd_at", 0.1), ("pgd_at", 0.2), ("pgd_at", 0.3)]},
    # The paper's CIFAR-scale transfer (notes section 6): PreAct-ResNet-18, PGD-10 with step eps/4, 2k fixed test
    # images (10k on GPU), 3 trials.
    "paper": {"recipe": "cifar10/pgd_at_preact18", "base": [], "data": "cifar10", "n": 10000, "trials": 3,
              "adv_eps": 2 / 255, "adv_steps": 10, "norm": "linf",
              "runs": [("standard", 0.0), ("pgd_at", 2 / 255), ("pgd_at", 4 / 255), ("pgd_at", 8 / 255),
                       ("trades", 8 / 255)]},
}


def _overrides(preset: dict[str, Any], method: str, eps: float) -> list[str]:
    extra = [f"method.name={method}"]
    if eps > 0:
        steps = 10 if preset["recipe"] != "default" else 3
        step = eps / 4 if preset["recipe"] != "default" else 2.5 * eps / steps
        extra += [f"attack.eps={eps}", f"attack.step_size={step}", f"attack.steps={steps}"]
    return preset["base"] + extra


def run_label(method: str, eps: float) -> str:
    return method if eps == 0 else f"{method}_eps{eps:.4g}"


def plan(preset: str, seed: int = 0) -> list[RunSpec]:
    """One run per (method, training eps) of the preset, in ``runs/LABEL``."""
    p = PRESETS[preset]
    return [RunSpec(f"runs/{run_label(method, eps)}", p["recipe"], tuple(_overrides(p, method, eps)), seed,
                    info={"method": method, "eps": eps}) for method, eps in p["runs"]]


def measure(preset: dict[str, Any], runs: list[TrainedRun], seed: int = 0) -> dict[str, dict[str, Any]]:
    """The criticality of every trained run's ``last.pt`` on clean and PGD inputs (re-randomisation trials drawn
    under ``seed``), keyed by run label."""
    x, y, _ = load_subset(preset["data"], preset["n"])
    adv = {"eps": preset["adv_eps"], "step_size": 2.5 * preset["adv_eps"] / preset["adv_steps"],
           "steps": preset["adv_steps"], "norm": preset["norm"]}
    results = {}
    for run in runs:
        res = checkpoint_criticality(run.dir / "last.pt", x, y, trials=preset["trials"], seed=seed * preset["trials"],
                                     adversarial=adv)
        results[run.dir.name] = {"method": run.spec.info["method"], "eps": run.spec.info["eps"], **res}
    return results


SOURCE = "Gavrikov et al. 2024, abstract; results.csv model means (notes 1, 5: baseline 70.0, PGD-AT Linf 8/255 89.9)"
SCALE = "ImageNet-1k ResNet-50 (54 layers), Salman et al. AT checkpoints, Linf eps 0.5-8/255 and L2 eps 0.01-5"
CLAIMS = (
    Claim("at-more-critical", "adversarial training makes layers more critical than standard training",
          "mean_criticality[pgd_at eps max]", ">", "mean_criticality[standard]", SOURCE, SCALE, resolution=1.0),
    Claim("at-small-eps-more-critical", "already at the smallest trained eps, AT layers are more critical",
          "mean_criticality[pgd_at eps min]", ">", "mean_criticality[standard]", SOURCE, SCALE, resolution=1.0),
    Claim("criticality-rises-with-eps", "mean criticality rises with the training eps",
          "mean_criticality[pgd_at eps max]", ">", "mean_criticality[pgd_at eps min]",
          "Gavrikov et al. 2024, eps-trend plot over the AT checkpoints (notes 4.5)", SCALE, resolution=1.0),
)


def metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean clean-input criticality (0-100, over layers) of standard, TRADES and the PGD-AT runs at the smallest and
    largest eps."""
    means: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        means.setdefault((r["method"], r["eps"]), []).append(r["criticality"])
    avg = {k: sum(v) / len(v) for k, v in means.items()}
    out = {f"mean_criticality[{m}]": v for (m, e), v in avg.items() if m != "pgd_at"}
    pgd = sorted(e for m, e in avg if m == "pgd_at")
    if pgd:
        out["mean_criticality[pgd_at eps min]"] = avg[("pgd_at", pgd[0])]
        out["mean_criticality[pgd_at eps max]"] = avg[("pgd_at", pgd[-1])]
    return out


@register_experiment("criticality", plan=plan, claims=CLAIMS, metrics=metrics,
                     title="Layer criticality across training methods", default_seeds={"cpu": 3, "cpu-resnet": 3})
def analyse(out: Path, runs: list[TrainedRun], *, preset: str, seed: int = 0) -> list[dict[str, Any]]:
    """Per-layer criticality rows of every run, heat maps (clean and PGD inputs) and ``criticality_table.txt``."""
    p = PRESETS[preset]
    results = measure(p, runs, seed)
    rows = []
    for r in results.values():
        for clean, adv in zip(r["clean"]["layers"], r["adv"]["layers"], strict=True):
            rows.append({"method": r["method"], "eps": r["eps"], "layer": clean["layer"],
                         "depth_index": clean["depth_index"], "stage": clean["stage"],
                         "criticality": clean["criticality"], "criticality_std": clean["criticality_std"],
                         "criticality_adv": adv["criticality"]})
    for kind in ("clean", "adv"):
        plot_heatmap({k: r[kind] for k, r in results.items()}, out / f"heatmap_{kind}.png",
                     title=f"layer criticality, {kind} inputs")
    table = format_table({k: r["clean"] for k, r in results.items()})
    (out / "criticality_table.txt").write_text(table + "\n")
    means = {k: {"mean": round(r["clean"]["mean"], 2), "mean_adv": round(r["adv"]["mean"], 2),
                 "clean_top1": round(r["clean"]["base_top1"], 4),
                 "stages": {s: round(v, 2) for s, v in r["clean"]["stages"].items()}} for k, r in results.items()}
    write_summary(out, rows, title="Layer criticality across training methods",
                  meta={"preset": preset, "reset": "rerandomize (fresh constructor draw per trial)",
                        "trials": p["trials"], "eval_subset": f"first {p['n']} {p['data']} test images",
                        "adv_inputs": f"PGD-{p['adv_steps']} linf eps {p['adv_eps']:.4g} vs the trained model",
                        "per_run": means, "plots": "heatmap_clean.png, heatmap_adv.png"},
                  runs=[r.dir for r in runs])
    print(table)
    return rows
