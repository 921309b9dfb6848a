"""``pgdat repro criticality`` (Gavrikov et al. 2024): standard vs PGD-AT (two or more eps) vs TRADES runs of one
architecture, then the criticality of every conv/linear layer (re-randomisation, fixed test subset, 3 trials) on
clean inputs and on PGD inputs of one common radius."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgdat.analysis.criticality import checkpoint_criticality, format_table, load_subset, plot_heatmap
from pgdat.experiments import EXPERIMENTS, write_summary
from pgdat.experiments.common import train_run

# Mnist5k CPU preset: small_cnn, 1,000 training images, 4 epochs of Adam (cosine), PGD-3 with step 2.5 eps / 3.
CPU_BASE = ["data.n_train=1000", "data.val_size=200", "train.epochs=4", "attack.eps_warmup_epochs=1",
            "eval.attack=pgd-3", "eval.n_test=200", "eval.final_attacks=clean,pgd-10", "eval.n_final=500",
            "train.progress=false"]
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"recipe": "default", "base": CPU_BASE, "data": "mnist5k", "n": 500, "trials": 3, "adv_eps": 0.1,
            "adv_steps": 10, "norm": "linf",
            "runs": [("standard", 0.0), ("pgd_at", 0.1), ("pgd_at", 0.3), ("trades", 0.3)]},
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


def train_and_measure(preset: dict[str, Any], out: Path) -> dict[str, dict[str, Any]]:
    """Train every run of ``preset`` into ``out/runs`` (reused when done) and measure its criticality."""
    x, y, _ = load_subset(preset["data"], preset["n"])
    adv = {"eps": preset["adv_eps"], "step_size": 2.5 * preset["adv_eps"] / preset["adv_steps"],
           "steps": preset["adv_steps"], "norm": preset["norm"]}
    results = {}
    for method, eps in preset["runs"]:
        label = run_label(method, eps)
        train_run(preset["recipe"], _overrides(preset, method, eps), out / "runs" / label)
        res = checkpoint_criticality(out / "runs" / label / "last.pt", x, y, trials=preset["trials"], seed=0,
                                     adversarial=adv)
        results[label] = {"method": method, "eps": eps, **res}
    return results


@EXPERIMENTS.register("criticality")
def run(preset: str, out: Path) -> list[dict[str, Any]]:
    p = PRESETS[preset]
    results = train_and_measure(p, out)
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
                  runs=[out / "runs" / k for k in results])
    print(table)
    return rows
