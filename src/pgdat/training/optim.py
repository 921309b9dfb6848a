"""Optimizers by name, built from :class:`OptimConfig`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from pgdat.config.schema import OptimConfig
from pgdat.registry import Registry

OPTIMIZERS: Registry[Callable[[Iterable[torch.nn.Parameter], OptimConfig], torch.optim.Optimizer]] = Registry(
    "optimizer")


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adam")
def adam(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("deat")
def deat(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """DEAT's diffusion-enhanced SGD (see :mod:`pgdat.training.deat`), usable with any method."""
    from pgdat.training.deat import DiffusionEnhancedSGD

    return DiffusionEnhancedSGD(params, lr=cfg.lr, k=cfg.deat_k, beta=cfg.deat_beta, normalize=cfg.deat_normalize,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay, decoupled_wd=cfg.decoupled_wd)


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name)(params, cfg)
