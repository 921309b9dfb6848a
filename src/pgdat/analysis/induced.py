"""The AT-induced distribution (Tian & Mao): for an AT checkpoint phi, the law of (Q_phi(x, y), y) where Q_phi is the
training PGD run with phi. Its generalisation difficulty (the IDE test error of a fresh model trained on the
induced training set) and the local dispersion of Q_phi.

Deviation from the authors' code, recorded in every result: pgdat's PGD keeps x + delta in [0,1] (their code does
not clamp), so induced images stay valid images.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from pgdat.attacks import pgd
from pgdat.config import AttackConfig, Config, load_config
from pgdat.data.bundle import Split, as_unit_float


def perturb_split(model: nn.Module, split: Split, attack: AttackConfig, *, batch_size: int = 256, seed: int = 0,
                  device: torch.device | str = "cpu") -> Split:
    """Q_phi applied to every example of ``split`` with its true labels, model in eval mode: a float32 Split."""
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(0, len(split), batch_size):
        x = as_unit_float(split.x[i:i + batch_size].to(device))
        y = split.y[i:i + batch_size].to(device)
        out.append(pgd(model, x, y, eps=attack.eps, step_size=attack.step_size, steps=attack.steps, norm=attack.norm,
                       init=attack.init, loss=attack.loss, bn_mode="eval", generator=gen).cpu())
    return Split(torch.cat(out), split.y.clone(), split.index.clone())


def local_dispersion(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: AttackConfig, *, sigma: float,
                     pairs: int, seed: int = 0) -> torch.Tensor:
    """gamma(x, y) = E ||Q(x + rho, y) - Q(x + rho', y)||_2^2 with rho, rho' ~ N(0, sigma^2 I), Monte Carlo over
    ``pairs`` pairs; x (B, C, H, W) in [0,1] -> (B,). Noisy inputs are clamped to [0,1]."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    total = torch.zeros(x.shape[0], device=x.device)

    def q(noise: torch.Tensor) -> torch.Tensor:
        return pgd(model, (x + noise).clamp(0, 1), y, eps=attack.eps, step_size=attack.step_size, steps=attack.steps,
                   norm=attack.norm, init=attack.init, bn_mode="eval", generator=gen)

    for _ in range(pairs):
        rho = sigma * torch.randn(x.shape, generator=gen, device=x.device)
        rho2 = sigma * torch.randn(x.shape, generator=gen, device=x.device)
        total += (q(rho) - q(rho2)).flatten(1).pow(2).sum(1)
    return total / pairs


def student_config(run_cfg: Config, epochs: int, overrides: list[str]) -> Config:
    """The IDE student's recipe: the run's model, standard training, no augmentation, clean evaluation."""
    base = [f"model.name={run_cfg.model.name}", "method.name=standard", "data.augment=none", "data.val_size=0",
            f"train.epochs={epochs}", "eval.attack=clean", "eval.final_attacks=clean", "eval.n_test=0",
            "eval.n_final=0", "train.progress=false", f"train.seed={run_cfg.train.seed}",
            f"data.batch_size={run_cfg.data.batch_size}"]
    cfg = load_config("default", base + overrides)
    return dataclasses.replace(cfg, model=run_cfg.model, data=dataclasses.replace(cfg.data, name=run_cfg.data.name))


def plot_induced(rows: list[dict], path: Path) -> None:
    """IDE test error and local dispersion against the epoch, next to the run's robust test accuracy."""
    from pgdat.analysis.plots import plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ep = [r["epoch"] for r in rows]
    ax.plot(ep, [100 * r["induced_test_error"] for r in rows], "o-", color="C3", label="IDE test error (%)")
    ax.plot(ep, [100 * (r["robust_test_acc"] or float("nan")) for r in rows], "s--", color="C0",
            label="robust test acc (%)")
    ax.set_xlabel("AT epoch of the checkpoint")
    ax.set_ylabel("%")
    ax2 = ax.twinx()
    ax2.plot(ep, [r["local_dispersion"] for r in rows], "^:", color="C2", label="local dispersion")
    ax2.set_ylabel("local dispersion (L2^2)")
    fig.legend(fontsize=8, loc="upper center")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
