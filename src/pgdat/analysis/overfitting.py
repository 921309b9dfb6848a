"""Robust overfitting (Rice et al.) read off a run's per-epoch metrics: best vs last robust test accuracy, the
epoch of the peak, the validation-selected epoch, and the train-test robust gap over time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pgdat.analysis.plots import plain_text, plt
from pgdat.errors import PgdatError


def read_history(run: Path) -> list[dict]:
    """Per-epoch rows of ``run/metrics.jsonl`` (the header line skipped)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise PgdatError(f"{run} has no metrics.jsonl: give a run directory written by pgdat train")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("type") != "header"]


def robust_overfitting(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary over epochs. ``best_robust_test`` is the test-optimal epoch (an oracle, for the analysis only);
    ``val_selected_*`` is what early stopping on the validation split would have picked."""
    rows = [m for m in history if m.get("test_robust_acc") is not None]
    if not rows:
        return {}
    peak = max(rows, key=lambda m: m["test_robust_acc"])
    last = rows[-1]
    out = {"best_robust_test": peak["test_robust_acc"], "best_epoch": peak["epoch"],
           "last_robust_test": last["test_robust_acc"], "last_epoch": last["epoch"],
           "robust_overfitting_gap": peak["test_robust_acc"] - last["test_robust_acc"],
           "best_clean_test": peak.get("test_clean_acc"), "last_clean_test": last.get("test_clean_acc")}
    with_val = [m for m in rows if m.get("val_robust_acc") is not None]
    if with_val:
        sel = max(with_val, key=lambda m: m["val_robust_acc"])
        out |= {"val_selected_epoch": sel["epoch"], "val_selected_robust_test": sel["test_robust_acc"]}
    train = [m for m in rows if m.get("train_robust_acc") is not None]
    out["train_test_robust_gap"] = [(m["epoch"], m["train_robust_acc"] - m["test_robust_acc"]) for m in train]
    return out


def plot_robust_overfitting(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """Test robust accuracy (solid) and train robust accuracy (dashed) per epoch for each named run, peaks marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, history) in enumerate(runs.items()):
        color = f"C{i}"
        tested = [m for m in history if m.get("test_robust_acc") is not None]  # eval.every > 1 skips epochs
        ax.plot([m["epoch"] for m in tested], [100 * m["test_robust_acc"] for m in tested], "-", color=color,
                marker="o", ms=3, label=plain_text(f"{name} test robust"))
        ep = [m["epoch"] for m in history]
        train = [m.get("train_robust_acc") for m in history]
        if any(v is not None for v in train):
            ax.plot(ep, [100 * v if v is not None else float("nan") for v in train], "--", color=color,
                    label=plain_text(f"{name} train robust"))
        s = robust_overfitting(history)
        ax.plot([s["best_epoch"]], [100 * s["best_robust_test"]], "*", color=color, ms=12)
    ax.set_xlabel("epoch")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title("robust overfitting: * = test-robust peak")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
