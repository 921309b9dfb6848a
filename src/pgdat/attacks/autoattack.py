"""Evaluation-only wrappers around the reference AutoAttack implementation (``pyautoattack``, Croce & Hein 2020).

pgdat keeps the reference package as the judge: each AutoAttack component (APGD-CE, APGD-T, FAB-T, Square) runs
the reference's own code with the reference's ``version='standard'`` settings (iterations, restarts, 9 target
classes, 5,000 Square queries), one component per step of pgdat's cascade, so that every success is re-checked in
fp32 between components (see :func:`pgdat.eval.evaluate`) and progress, resume and sharding work per component.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.precision import autocast

AA_NORMS = {"linf": "Linf", "l2": "L2"}
STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")  # the reference's version='standard', in its order
COMPONENTS = (*STANDARD, "apgd-dlr", "fab")
# run_standard_evaluation's default batch size: the components draw their random starts per batch, so pgdat's
# cascade reproduces the reference's plain run point by point only in batches of this size (and the same order)
REFERENCE_BATCH = 250


def reference_version() -> str:
    """Version of the installed reference package (e.g. ``0.2.0``), or ``missing``."""
    try:
        return version("pyautoattack")
    except PackageNotFoundError:  # pragma: no cover - a declared dependency
        return "missing"


def _adversary(model: nn.Module, device: torch.device, eps: float, norm: str, seed: int):
    """The reference ``AutoAttack`` object with its standard settings (the components are its attributes)."""
    try:
        from pyautoattack import AutoAttack
    except ImportError:  # pragma: no cover - a declared dependency
        raise PgdatError("AutoAttack needs the reference package: pip install pyautoattack==0.2.0") from None
    if norm not in AA_NORMS:
        raise PgdatError(f"AutoAttack supports norms {', '.join(AA_NORMS)} (got norm='{norm}'); e.g. norm='linf'")
    adversary = AutoAttack(model, device=device, eps=float(eps), norm=AA_NORMS[norm], seed=seed, version="standard")
    adversary.verbose = False
    return adversary


def _perturb(adversary, name: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """One component's ``perturb`` exactly as the reference's ``run_standard_evaluation`` calls it on a batch."""
    if name in ("apgd-ce", "apgd-dlr"):
        attack = adversary.apgd
        attack.loss = "ce" if name == "apgd-ce" else "dlr"
        if name == "apgd-dlr":
            attack.n_restarts = 5  # the reference's class default (version='custom'); standard APGD-CE uses 1
    elif name == "apgd-t":
        attack = adversary.apgd_targeted
    elif name in ("fab", "fab-t"):
        attack = adversary.fab
        attack.targeted = name == "fab-t"
        attack.n_restarts = 1 if name == "fab-t" else 5
    elif name == "square":
        attack = adversary.square
    else:
        raise PgdatError(f"unknown AutoAttack component '{name}'; valid: {', '.join(COMPONENTS)}")
    attack.seed = seed
    return attack.perturb(x, y)


class _LowPrecisionForward(nn.Module):
    """``model`` run under autocast (bf16/fp16) with its logits cast back to fp32: only the network's convolutions
    and matmuls run in low precision; the reference's own arithmetic (losses, step sizes, FAB's projections, Square's
    acceptance tests) stays in fp32, and input gradients come back in fp32."""

    def __init__(self, model: nn.Module, precision: str) -> None:
        super().__init__()
        self.model, self.precision = model, precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision, x.device):
            return self.model(x).float()


@contextlib.contextmanager
def _frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters without ``requires_grad`` for the attack, restored after: the reference's FAB calls ``backward()``,
    which would otherwise compute every weight gradient it never reads (10% of FAB-T's time on the default CNN) and
    leave them accumulated in the caller's ``.grad``."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def autoattack_component(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, name: str, eps: float,
                         norm: str = "linf", seed: int = 0, precision: str = "fp32") -> torch.Tensor:
    """Run one reference AutoAttack component on (x (B, C, H, W) in [0,1], y (B,)); returns x_adv (B, C, H, W).

    name: ``apgd-ce``, ``apgd-t``, ``fab-t`` or ``square`` (standard settings), or ``apgd-dlr`` / ``fab`` (the
    reference's class defaults, 5 restarts). precision: ``bf16``/``fp16`` runs the model's forward and backward
    passes under autocast (the attack's own arithmetic stays fp32); the caller must re-check every success in fp32,
    since a low-precision argmax can invent one. The reference seeds the global RNG; it is forked here, so the
    caller's random streams are untouched. The model must be in eval mode; its parameters are frozen meanwhile.
    """
    if eps <= 0:
        return x.detach().clone()
    # fp32 runs the reference's own code unchanged; autocast wraps only the model, not the attack's arithmetic
    # (around the whole attack, FAB's projections ran in bf16 and took 1.4x longer than fp32)
    net = model if precision == "fp32" else _LowPrecisionForward(model, precision)
    adversary = _adversary(net, x.device, eps, norm, seed)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), _frozen_parameters(model):
        x_adv = _perturb(adversary, name, x, y, seed)
    return x_adv.detach().to(x.dtype)


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
               attacks: list[str] | None = None, seed: int = 0, precision: str = "fp32") -> torch.Tensor:
    """Standard AutoAttack (or the listed components) as a cascade on one batch, each component only on the points
    that are still classified correctly in fp32; returns x_adv (B, C, H, W). :func:`pgdat.eval.evaluate` is the
    batched, resumable form of the same cascade (``attacks="clean,autoattack"``)."""
    x_adv = x.detach().clone()
    with torch.no_grad():
        robust = model(x).argmax(dim=1).eq(y)
    for name in attacks or STANDARD:
        idx = robust.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        adv = autoattack_component(model, x[idx], y[idx], name=name, eps=eps, norm=norm, seed=seed,
                                   precision=precision)
        with torch.no_grad():
            broken = model(adv).argmax(dim=1).ne(y[idx])
        x_adv[idx[broken]] = adv[broken]
        robust[idx[broken]] = False
    return x_adv
