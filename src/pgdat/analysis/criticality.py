"""Layer criticality (Gavrikov et al. 2024): how much the decision function changes when one layer is reset.

For every selected layer ``l`` and trial ``t`` the trained state is restored (from a deep copy), the layer's
parameters and buffers are replaced by those of a reset source, and the softmax outputs on a fixed evaluation
subset are compared with the trained model's::

    cos_t(l) = mean_i cos(softmax(z0_i), softmax(z_i))        # z: logits (N, C)
    crit(l)  = 100 * (1 - mean_t cos_t(l))                    # percent, in [0, 100]

Reset sources: ``rerandomize`` (the paper: a fresh untrained model from the same constructor, one draw per trial,
shared by all layers of that trial), ``reinit`` (the run's saved theta_0, ``init.pt``) and ``zero``.
"""

from __future__ import annotations

import copy
import dataclasses
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pgdat.errors import PgdatError
from pgdat.models.layers import WEIGHT_LAYERS, layer_groups
from pgdat.models.normalize import NormalizedModel

RESETS = ("rerandomize", "reinit", "zero")
LAYER_SETS = ("conv+linear", "conv+linear+bn", "block")
BN_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclasses.dataclass(frozen=True)
class LayerUnit:
    """One reset unit: a display ``name``, the module names reset together, its stage label and depth index."""

    name: str
    modules: tuple[str, ...]
    stage: str
    depth_index: int


def select_layers(model: nn.Module, layers: str | Callable[[str, nn.Module], bool] = "conv+linear") -> list[LayerUnit]:
    """The reset units of ``model`` in forward order.

    layers: ``conv+linear`` (the paper: every conv/linear, matched with ``isinstance``), ``conv+linear+bn`` (adds
    BatchNorm modules, stage of the preceding conv), ``block`` (all conv/linear of one stage label reset together),
    or a predicate ``(name, module) -> bool``.
    """
    groups = layer_groups(model)
    stage_of = dict(groups)
    if callable(layers):
        names = [n for n, m in model.named_modules() if n and layers(n, m)]
        return [LayerUnit(n, (n,), stage_of.get(n, n), i) for i, n in enumerate(names)]
    if layers not in LAYER_SETS:
        raise PgdatError(f"layers must be one of {', '.join(LAYER_SETS)} or a callable (got '{layers}')")
    if layers == "block":
        blocks: dict[str, list[str]] = {}
        for n, stage in groups:
            blocks.setdefault(stage, []).append(n)
        return [LayerUnit(s, tuple(ns), s, i) for i, (s, ns) in enumerate(blocks.items())]
    units, stage = [], "stem"
    for n, m in model.named_modules():
        if isinstance(m, WEIGHT_LAYERS):
            stage = stage_of[n]
        elif not (layers == "conv+linear+bn" and isinstance(m, BN_LAYERS)):
            continue
        units.append(LayerUnit(n, (n,), stage, len(units)))
    return units


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A deep copy of ``model.state_dict()`` (every tensor cloned, so in-place resets cannot alias it)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def _probs(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax outputs (N, C) of ``model`` (eval mode) on ``x`` (N, ...) in fixed-order batches."""
    return torch.cat([F.softmax(model(x[i:i + batch_size]).float(), dim=1) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def _reset_unit(model: nn.Module, unit: LayerUnit, source: dict[str, torch.Tensor] | None) -> None:
    """Overwrite the parameters and buffers of ``unit``'s modules with ``source`` (a state_dict), or zeros."""
    for mod_name in unit.modules:
        mod = model.get_submodule(mod_name)
        for key, t in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            if source is None:
                if t.is_floating_point():
                    t.zero_()
                continue
            full = f"{mod_name}.{key}"
            if full not in source:
                raise PgdatError(f"reset source has no tensor '{full}': it was built for another architecture")
            t.copy_(source[full].to(t.device, t.dtype))


def draw_seed(seed: int) -> int:
    """The global-RNG seed of the ``rerandomize`` draw of trial seed ``seed``: hashed, never the small integer itself,
    because the Trainer builds theta_0 under ``torch.manual_seed(train.seed)``; drawing under the same seed (0 for
    both by default) re-creates theta_0 exactly, i.e. measures re-initialization, not re-randomization."""
    from pgdat.seeding import stream_seed

    return stream_seed(seed, 0, 0, "criticality_rerandomize")


def default_init_fn(model: nn.Module) -> Callable[[int], dict[str, torch.Tensor]]:
    """Fresh-draw source for ``rerandomize`` when no constructor is known: a deep copy of ``model`` on which every
    module's ``reset_parameters()`` is called (PyTorch's default init) under ``torch.manual_seed(draw_seed(seed))``."""
    def draw(seed: int) -> dict[str, torch.Tensor]:
        fresh = copy.deepcopy(model)
        torch.manual_seed(draw_seed(seed))
        for m in fresh.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        return clone_state(fresh)
    return draw


@dataclasses.dataclass
class CriticalityResult:
    """Per-unit, per-trial cosine similarities and accuracies on one evaluation set."""

    units: list[LayerUnit]
    cos: torch.Tensor          # (T, L) mean cosine similarity of softmax outputs
    top1: torch.Tensor         # (T, L) top-1 accuracy of the reset model (nan without labels)
    base_top1: float           # top-1 of the trained model (nan without labels)
    meta: dict[str, Any]

    @property
    def criticality(self) -> torch.Tensor:
        """(L,) criticality in percent: 100 * (1 - mean over trials of cos)."""
        return 100.0 * (1.0 - self.cos.mean(0))

    def summary(self) -> dict[str, Any]:
        """Per-layer mean/std over trials, model mean/std over layers, per-stage means (all in percent).

        The spreads follow the reference's analysis (paulgavrikov/layer_criticality code/analysis.ipynb): the
        per-layer std over trials is pandas' ``agg("std")``, the sample std (ddof 1; nan with one trial, as pandas);
        the model's std over layers is numpy's ``mat.std(axis=1)``, the population std (ddof 0)."""
        crit = self.criticality
        trials = self.cos.shape[0]
        std = 100.0 * self.cos.std(0, correction=1) if trials > 1 else torch.full_like(crit, float("nan"))
        rec = self.top1.mean(0) / self.base_top1 if self.base_top1 > 0 else torch.full_like(crit, float("nan"))
        layers = [{"layer": u.name, "stage": u.stage, "depth_index": u.depth_index, "criticality": float(c),
                   "criticality_std": float(s), "top1": float(a), "recovered_acc": float(r)}
                  for u, c, s, a, r in zip(self.units, crit, std, self.top1.mean(0), rec, strict=True)]
        stages: dict[str, list[float]] = {}
        for row in layers:
            stages.setdefault(row["stage"], []).append(row["criticality"])
        return {"mean": float(crit.mean()), "std": float(crit.std(correction=0)), "base_top1": self.base_top1,
                "stages": {s: sum(v) / len(v) for s, v in stages.items()}, "layers": layers, "meta": self.meta}


def layer_criticality(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
                      layers: str | Callable[[str, nn.Module], bool] = "conv+linear", reset: str = "rerandomize",
                      init_fn: Callable[[int], dict[str, torch.Tensor]] | None = None,
                      init_state: dict[str, torch.Tensor] | None = None, trials: int = 3, seed: int = 0,
                      batch_size: int = 500) -> CriticalityResult:
    """Criticality of every selected unit of ``model`` on the fixed inputs ``x`` (N, C, H, W) in [0, 1].

    init_fn: ``seed -> state_dict`` of a fresh untrained model (``rerandomize``; default :func:`default_init_fn`).
    init_state: theta_0 for ``reinit``. The model's state is restored bit-exactly at the end.
    """
    if reset not in RESETS:
        raise PgdatError(f"reset must be one of {', '.join(RESETS)} (got '{reset}')")
    if trials < 1:
        raise PgdatError(f"trials must be >= 1 (got {trials})")
    if reset == "reinit" and init_state is None:
        raise PgdatError("reset='reinit' needs init_state (the run's init.pt weights)")
    units = select_layers(model, layers)
    if not units:
        raise PgdatError("no layers selected: the model has no conv/linear layer matching the 'layers' option")
    backup, was_training = clone_state(model), model.training
    model.eval()
    draw = init_fn or default_init_fn(model)
    cos, top1 = torch.zeros(trials, len(units)), torch.full((trials, len(units)), float("nan"))
    try:
        p0 = _probs(model, x, batch_size)
        base = float((p0.argmax(1) == y).float().mean()) if y is not None else float("nan")
        for t in range(trials):
            source = draw(seed + t) if reset == "rerandomize" else init_state if reset == "reinit" else None
            for li, unit in enumerate(units):
                model.load_state_dict(backup)
                _reset_unit(model, unit, source)
                p = _probs(model, x, batch_size)
                cos[t, li] = F.cosine_similarity(p0, p, dim=1).mean()
                if y is not None:
                    top1[t, li] = (p.argmax(1) == y).float().mean()
    finally:
        model.load_state_dict(backup)
        model.train(was_training)
    meta = {"reset": reset, "layers": layers if isinstance(layers, str) else "custom", "trials": trials,
            "seed": seed, "n": len(x), "init": "constructor" if init_fn else "reset_parameters",
            "selected": [u.name for u in units]}
    return CriticalityResult(units, cos, top1, base, meta)


def constructor_init_fn(model_config: dict, like: nn.Module) -> Callable[[int], dict[str, torch.Tensor]]:
    """``seed -> state_dict`` of a fresh model built from a pgdat ``model_config`` (the architecture's own init)."""
    from pgdat.checkpoint import build_model

    def draw(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(draw_seed(seed))
        return clone_state(build_model(model_config))
    if not isinstance(like, NormalizedModel):
        raise PgdatError("constructor_init_fn needs a pgdat model (NormalizedModel) built from model_config")
    return draw


def plot_heatmap(summaries: dict[str, dict[str, Any]], path: str | Path, *, title: str = "layer criticality") -> Path:
    """Heat map (runs x layers) of criticality [%] with each run's mean over layers; one row per run."""
    from pgdat.analysis.plots import plain_text, plt

    runs = list(summaries)
    names = [r["layer"] for r in summaries[runs[0]]["layers"]]
    grid = torch.tensor([[r["criticality"] for r in summaries[k]["layers"]] for k in runs])
    # wide enough for the run labels, the colour bar and the title (it was clipped for nets with few layers)
    width = max(6.0, 3.0 + 0.6 * len(names))
    fig, ax = plt.subplots(figsize=(width, 1.6 + 0.45 * len(runs)))
    im = ax.imshow(grid.numpy(), cmap="viridis_r", vmin=0, vmax=100, aspect="auto")
    ticks = [plain_text(f"{r['layer']}\n[{r['stage']}]") for r in summaries[runs[0]]["layers"]]
    ax.set_xticks(range(len(names)), ticks, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(runs)), [plain_text(f"{k} (mean {summaries[k]['mean']:.1f})") for k in runs], fontsize=8)
    for i in range(len(runs)):
        for j in range(len(names)):
            ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label="criticality [%]")
    ax.set_title(plain_text(textwrap.fill(title, width=int(9 * width))), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    """Plain-text table: one line per (run, layer) plus per-stage and model means."""
    lines = [f"{'run':<24} {'layer':<22} {'stage':<10} {'crit%':>7} {'std':>6} {'top1':>6}"]
    for run, s in summaries.items():
        for r in s["layers"]:
            lines.append(f"{run:<24} {r['layer']:<22} {r['stage']:<10} {r['criticality']:7.2f} "
                         f"{r['criticality_std']:6.2f} {r['top1']:6.3f}")
        stages = ", ".join(f"{k} {v:.1f}" for k, v in s["stages"].items())
        lines.append(f"{run:<24} mean {s['mean']:.2f} +- {s['std']:.2f}  stages: {stages}")
    return "\n".join(lines)


def checkpoint_criticality(path: str | Path, x: torch.Tensor, y: torch.Tensor, *, reset: str = "rerandomize",
                           adversarial: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """Criticality summaries of a pgdat checkpoint or run directory on clean ``x`` (N, C, H, W) and, when
    ``adversarial`` holds :func:`pgdat.attacks.pgd` arguments (eps, step_size, steps, norm), on PGD examples crafted
    once against the trained model (seed 0). ``reinit`` reads ``init.pt`` from the run directory."""
    from pgdat.attacks import pgd
    from pgdat.checkpoint import load_checkpoint, load_model, resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    model = load_model(ckpt)
    cfg = load_checkpoint(ckpt)["model_config"]
    init_state = None
    if reset == "reinit":
        init_pt = ckpt.parent / "init.pt"
        if not init_pt.is_file():
            raise PgdatError(f"reset='reinit' needs {init_pt} (written by the Trainer at step 0); use rerandomize")
        init_state = load_checkpoint(init_pt)["model"]
    kw = {"init_fn": constructor_init_fn(cfg, model), "init_state": init_state, "reset": reset, **kw}
    out = {"checkpoint": str(ckpt), "clean": layer_criticality(model, x, y, **kw).summary()}
    if adversarial:
        x_adv = pgd(model, x, y, generator=torch.Generator().manual_seed(0), **adversarial)
        out["adv"] = layer_criticality(model, x_adv, y, **kw).summary()
        out["adv"]["meta"]["attack"] = dict(adversarial)
    return out


def load_subset(name: str, n: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The first ``n`` test images of ``name`` as float (N, C, H, W) in [0, 1], labels (N,) and their indices."""
    from pgdat.data import load_dataset
    from pgdat.data.bundle import as_unit_float

    test = load_dataset(name).test
    if not 1 <= n <= len(test.y):
        raise PgdatError(f"--n must be in [1, {len(test.y)}] for {name} (got {n})")
    return as_unit_float(test.x[:n]).clone(), test.y[:n], test.index[:n].tolist()
