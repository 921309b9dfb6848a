"""Plots of a run's metrics (matplotlib, headless)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CURVES = [("train", "-"), ("val", "--"), ("test", ":")]


def plain_text(text: object) -> str:
    """``text`` shown as written: every ``$`` escaped, so a run name or metric key such as ``$\\foo$`` is not parsed
    as mathtext (which raises on unknown commands). Use it for every title, label and legend entry made from data."""
    return str(text).replace("$", r"\$")


def wrap_title(title: object, width_in: float, fontsize: float = 12) -> tuple[str, int]:
    """``title`` as plain text wrapped to lines that fit ``width_in`` inches at ``fontsize`` points (glyphs taken
    as 0.6 em wide on average, above what run names measure), and its number of lines."""
    lines = textwrap.wrap(plain_text(title), width=max(20, int(width_in * 72 / (0.6 * fontsize)))) or [""]
    return "\n".join(lines), len(lines)


def top_margin(lines: int, height_in: float, fontsize: float = 12, pad_pt: float = 10) -> float:
    """Figure fraction below which the axes must end so that ``lines`` title lines fit above them."""
    return 1 - (lines * 1.25 * fontsize + pad_pt) / 72 / height_in


def percent(values: list[float | None]) -> list[float]:
    """Accuracies in [0,1] as percentages; None (e.g. a class absent from the evaluated subset) -> nan (no bar)."""
    return [float("nan") if v is None else 100 * v for v in values]


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` via a temp file and a rename (a reader never sees a half-written PNG); close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path


def robust_curve_label(history: list[dict[str, Any]], split: str) -> str:
    """Legend name of a split's robust curve: the training attack for ``train``; for val/test the per-epoch attack
    that ``robust_acc_by`` records (``PGD-10, per-epoch``), never just "robust" (it is not the final number)."""
    if split == "train":
        return "train robust (training attack)"
    by = next((m["robust_acc_by"] for m in history if m.get("robust_acc_by")), None)
    return f"{split} {by}" if by else f"{split} robust"


def evaluated_points(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(epochs, accuracies in %) of the epochs whose row has ``key``: with eval.every > 1 only every N-th epoch is
    evaluated, and its curve joins those epochs (NaN gaps would break the line into invisible pieces)."""
    pts = [(m["epoch"], 100 * m[key]) for m in history if m.get(key) is not None]
    return [e for e, _ in pts], [v for _, v in pts]


def plot_learning_curves(history: list[dict[str, Any]], path: Path, *, best_epoch: int | None = None,
                         title: str = "") -> Path:
    """Clean (blue) and robust (red) accuracy for train/val/test over epochs, plus the learning rate."""
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    epochs = [m["epoch"] for m in history]
    for split, style in CURVES:
        for kind, color in (("clean", "tab:blue"), ("robust", "tab:red")):
            pts = evaluated_points(history, f"{split}_{kind}_acc")
            if pts[0]:
                name = robust_curve_label(history, split) if kind == "robust" else f"{split} {kind}"
                ax.plot(*pts, style, color=color, marker="o", ms=3, label=name)
    if best_epoch is not None and best_epoch > 0:
        ax.axvline(best_epoch, color="k", alpha=0.4, lw=1)
        right = best_epoch > (min(epochs) + max(epochs)) / 2  # text to the left of the line there: never off the edge
        ax.annotate(f"best (val) ep {best_epoch} ", (best_epoch, ax.get_ylim()[1]), fontsize=8, va="top",
                    ha="right" if right else "left")
    ax.set_ylabel("accuracy (%)")
    text, lines = wrap_title(title, 6.2)  # centred on the axes: 6.2 in fit either side
    ax.set_title(text)
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    ax_lr.plot(epochs, [m["lr"] for m in history], color="tab:gray")
    ax_lr.set_ylabel("lr (end of epoch)")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))  # 1e-3-sized rates: short ticks, no clipping
    ax_lr.set_xlabel("epoch")
    ax_lr.grid(alpha=0.3)
    # Fixed margins rather than tight_layout: the layout pass measured every text extent and cost ~40% of the
    # drawing time (this figure is redrawn during training); the labels here have a known, short extent.
    fig.subplots_adjust(left=0.12, right=0.97, top=min(0.94, top_margin(lines, 6)), bottom=0.08, hspace=0.08)
    return save_figure(fig, path, dpi=110)


def plot_series(history: list[dict[str, Any]], keys: list[str], path: Path, *, ylabel: str, band: str | None = None,
                title: str = "", logy: bool = True) -> Path:
    """Per-epoch metric(s) ``keys`` from a run's history; ``band``: a variance key drawn as ±1 std around keys[0]."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [m["epoch"] for m in history]
    for key in keys:
        ax.plot(epochs, [m.get(key, float("nan")) for m in history], marker="o", ms=3, label=plain_text(key))
    if band is not None and keys:
        mean = [m.get(keys[0], float("nan")) for m in history]
        std = [max(m.get(band, 0.0), 0.0) ** 0.5 for m in history]
        ax.fill_between(epochs, [max(a - b, 1e-12) for a, b in zip(mean, std, strict=True)],
                        [a + b for a, b in zip(mean, std, strict=True)], alpha=0.2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(plain_text(ylabel))
    ax.set_title(wrap_title(title, 5.0)[0])
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def class_names(dataset: object, n: int) -> list[str]:
    """Names of the ``n`` classes of the registered dataset ``dataset`` (e.g. cifar10: airplane, automobile, ...);
    the class indices as text when the name is unknown or its class count is not ``n`` (a run's config is data)."""
    from pgdat.data.datasets import DATASETS

    info = DATASETS[dataset].info if isinstance(dataset, str) and dataset in DATASETS else None
    return list(info.classes) if info is not None and len(info.classes) == n else [str(c) for c in range(n)]


def label_classes(ax, names: list[str], offset: float = 0.0) -> float:
    """Class names as x tick labels at 0..C-1 (+ ``offset``), slanted when any is longer than 3 characters; none
    when C > 20 (unreadable). Returns the bottom margin (figure fraction) the labels need at a 3 in high figure."""
    if len(names) > 20:
        return 0.16
    slant = max(map(len, names), default=0) > 3
    ax.set_xticks([c + offset for c in range(len(names))], [plain_text(s) for s in names],
                  rotation=30 if slant else 0, ha="right" if slant else "center", fontsize=8 if slant else 10)
    return 0.18 + 0.01 * min(max(map(len, names)), 12) if slant else 0.16


def plot_per_class(metrics: dict[str, Any], path: Path, *, title: str = "", dataset: str | None = None) -> Path | None:
    """Bars of one epoch's per-class test accuracies (``per_class_test_clean_acc`` / ``..._robust_acc``), the
    x axis labelled with the class names of ``dataset`` (a registered name) where it has them."""
    keys = [k for k in ("per_class_test_clean_acc", "per_class_test_robust_acc") if isinstance(metrics.get(k), list)]
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(7, 3))
    n = len(metrics[keys[0]])
    names = {"clean": "clean", "robust": metrics.get("robust_acc_by") or "robust"}  # e.g. "PGD-10, per-epoch"
    for j, k in enumerate(keys):
        ax.bar([c + j * 0.4 for c in range(n)], percent(metrics[k]), 0.4, label=plain_text(names[k.split("_")[-2]]))
    bottom = label_classes(ax, class_names(dataset, n), offset=0.2 * (len(keys) - 1))
    ax.set_xlabel("class")
    ax.set_ylabel("test accuracy (%)")
    # a long run directory wraps in the part of the width the legend leaves free (it was clipped on the right)
    text, lines = wrap_title(title, 4.2, fontsize=10)
    ax.set_title(text, loc="left", fontsize=10)
    # above the axes, right of the title: inside, it hid the last classes' bars
    ax.legend(fontsize=8, ncol=len(keys), loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
    top = min(0.88, top_margin(lines, 3, fontsize=10))
    fig.subplots_adjust(left=0.1, right=0.98, top=top, bottom=bottom)  # fixed margins, see plot_learning_curves
    return save_figure(fig, path, dpi=100)
