"""Robust evaluation as a cascade: each attack only sees the points still classified correctly, so clean and
robust accuracy come from the same examples and a point is robust only if every attack failed on it."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from pgdat.attacks.core import attack_mode, check_inputs
from pgdat.attacks.specs import EvalAttack, parse_attacks
from pgdat.data.bundle import as_unit_float
from pgdat.errors import PgdatError
from pgdat.eval.checks import check_label_range, output_warnings
from pgdat.precision import autocast, resolve_precision
from pgdat.threat import ThreatModel


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate` on N examples.

    accuracy: attack spec -> accuracy in [0,1] under the cascade up to and including that attack (``clean`` first),
    so the last entry is the robust accuracy. flags: spec -> (N,) bool, correct under the cascade so far.
    seconds: wall time per attack. warnings: messages of the sanity checks that fired.
    """

    accuracy: dict[str, float]
    flags: dict[str, torch.Tensor]
    n: int
    eps: float
    norm: str
    seed: int
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def robust(self) -> torch.Tensor:
        """(N,) bool: correct under every attack."""
        return list(self.flags.values())[-1]

    @property
    def robust_accuracy(self) -> float:
        return list(self.accuracy.values())[-1]

    def per_class(self, y: torch.Tensor, num_classes: int) -> dict[str, list[float]]:
        """Accuracy per class (spec -> list of C floats; NaN for classes absent from ``y``) under the cascade."""
        total = torch.bincount(y, minlength=num_classes).double()
        return {k: (torch.bincount(y[f], minlength=num_classes).double() / total).tolist()
                for k, f in self.flags.items()}

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "eps": self.eps, "norm": self.norm, "seed": self.seed,
                "seconds": self.seconds, "warnings": self.warnings}


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int, precision: str) -> torch.Tensor:
    """Argmax predictions (N,) in batches, without gradients."""
    out = []
    with torch.no_grad(), autocast(precision, x.device):
        for i in range(0, x.shape[0], batch_size):
            out.append(model(x[i:i + batch_size]).argmax(dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def _run_attack(model: nn.Module, attack: EvalAttack, x: torch.Tensor, y: torch.Tensor, robust: torch.Tensor, *,
                threat: ThreatModel, step_size: float | None, batch_size: int, seed: int, precision: str) -> None:
    """Attack the still-robust points in batches and clear ``robust`` (N,) in place where the attack succeeds."""
    idx = robust.nonzero().squeeze(1)
    if idx.numel() == 0 or threat.eps == 0:
        return
    gen = torch.Generator(device=x.device).manual_seed(seed)
    for i in range(0, idx.numel(), batch_size):
        b = idx[i:i + batch_size]
        x_adv = attack.run(model, x[b], y[b], eps=threat.eps, norm=threat.norm, step_size=step_size, generator=gen,
                           precision=precision, seed=seed)
        if threat.norm_of(x_adv.float() - x[b].float()).max() > threat.eps * (1 + 1e-4) + 1e-6:
            raise RuntimeError(f"attack {attack.spec} left the {threat.norm} ball of radius {threat.eps}")
        robust[b] = _predict(model, x_adv, batch_size, "fp32").eq(y[b])


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attacks: str | list[str],
    eps: float,
    norm: str = "linf",
    batch_size: int = 256,
    step_size: float | None = None,
    seed: int = 0,
    precision: str = "fp32",
    checks: bool = True,
) -> EvalResult:
    """Accuracy of ``model`` on (x (N, C, H, W) in [0,1] or uint8, y (N,)) under a cascade of attacks.

    attacks: specs such as ``"clean,pgd-20,autoattack"``. eps: radius in pixel units. step_size: for pgd/cw,
    default 2.5*eps/K. precision: autocast for attack passes (predictions that decide robustness run in fp32).
    The model is evaluated in eval mode (with a loud warning if it was in train mode) and its mode is restored.
    """
    if batch_size < 1:
        raise PgdatError(f"batch_size must be >= 1 (got {batch_size})")
    threat = ThreatModel(norm, eps)
    parsed = parse_attacks(attacks)
    x = as_unit_float(x) if x.dtype == torch.uint8 else x
    check_inputs(x, y)
    precision = resolve_precision(precision, x.device)
    if model.training:
        warnings.warn("evaluate() got a model in train mode: BatchNorm/dropout would make the attack and the "
                      "accuracy wrong, so it is switched to eval mode for the evaluation (and restored after)",
                      stacklevel=2)
    with attack_mode(model, "eval"):
        check_label_range(model, x, y)
        notes = output_warnings(model, x[:batch_size], y[:batch_size]) if checks else []
        flags: dict[str, torch.Tensor] = {}
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        robust = _predict(model, x, batch_size, "fp32").eq(y)
        flags["clean"], seconds["clean"] = robust.clone(), time.perf_counter() - t0
        for k, attack in enumerate(a for a in parsed if a.family != "clean"):
            t0 = time.perf_counter()
            _run_attack(model, attack, x, y, robust, threat=threat, step_size=step_size, batch_size=batch_size,
                        seed=seed + k, precision=precision)
            flags[attack.spec], seconds[attack.spec] = robust.clone(), time.perf_counter() - t0
    n = int(y.numel())
    accuracy = {k: float(v.double().mean()) if n else float("nan") for k, v in flags.items()}
    for w in notes:
        warnings.warn(w, stacklevel=2)
    return EvalResult(accuracy=accuracy, flags=flags, n=n, eps=eps, norm=norm, seed=seed, seconds=seconds,
                      warnings=notes)
