"""Gradient-masking guards (in the spirit of AutoAttack's ``checks.py`` and Athalye et al.'s list of symptoms).

Each guard returns a :class:`MaskingFinding` that says whether it fired and what that means for the evaluation:
probabilities instead of logits, randomised outputs, zero input gradients for many points, robust accuracy that
rises with more steps or a larger eps, a black-box attack that beats the white-box one, a huge eps that does not
drive accuracy to ~0. A model whose robustness is real passes them all silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.attacks.core import attack_mode, check_inputs
from pgdat.attacks.pgd import pgd
from pgdat.errors import PgdatError
from pgdat.eval.checks import check_outputs
from pgdat.memory import API_BATCH, BatchOption, on_prefix
from pgdat.threat import ThreatModel


@dataclass(frozen=True)
class MaskingFinding:
    """One guard: ``fired`` means a symptom of gradient masking; ``value`` is the measured quantity."""

    name: str
    fired: bool
    value: float
    message: str


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return model(x).argmax(1).eq(y).float().mean().item()


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) true-class logit minus the best other logit; < 0 means misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return true - other


def random_search(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
                  queries: int = 300, seed: int = 0) -> torch.Tensor:
    """A gradient-free attack: Square-style random search on the margin loss (x (B, C, H, W) in [0,1], y (B,)).

    linf: starts at a random vertex (vertical stripes of +-eps) and re-draws the sign of a random square window
    per query, keeping a change only when the margin drops. l2: adds random Gaussian directions of norm eps/4
    and projects back to the eps ball. Returns detached x_adv (eps ball, [0,1] box). ``queries`` forward passes.
    """
    threat = ThreatModel(norm, eps)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    b, c, h, w = x.shape
    if norm == "linf":
        stripes = torch.randint(0, 2, (b, c, 1, w), generator=gen, device=x.device).float() * 2 - 1
        delta = eps * stripes.expand(b, c, h, w).clone()
    else:
        delta = torch.zeros_like(x)
    delta = threat.project(x, delta)
    with torch.no_grad():
        best = _margin(model(x + delta), y)
        for q in range(queries):
            if norm == "linf":
                side = max(1, round(min(h, w) * max(0.1, 0.5 * (1 - q / max(queries, 1)))))
                r = int(torch.randint(0, h - side + 1, (1,), generator=gen))
                s = int(torch.randint(0, w - side + 1, (1,), generator=gen))
                cand = delta.clone()
                signs = torch.randint(0, 2, (b, c, 1, 1), generator=gen, device=x.device).float() * 2 - 1
                cand[:, :, r:r + side, s:s + side] = eps * signs
            else:
                d = torch.randn(x.shape, generator=gen, device=x.device)
                d = d * (eps / 4) / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                cand = delta + d
            cand = threat.project(x, cand)
            m = _margin(model(x + cand), y)
            take = (m < best) & (best >= 0)
            delta[take], best[take] = cand[take], m[take]
            if bool((best < 0).all()):
                break
    return (x + delta).clamp(0, 1).detach()


def _pgd_acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str, steps: int,
             seed: int) -> float:
    gen = torch.Generator(device=x.device).manual_seed(seed)
    x_adv = pgd(model, x, y, eps=eps, step_size=2.5 * eps / steps, steps=steps, norm=norm, generator=gen,
                check=False)
    return _accuracy(model, x_adv, y)


def _output_guards(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[MaskingFinding]:
    """Probabilities instead of logits; two forward passes that differ. Outputs that are not logits (B, C), e.g.
    argmax labels, are a PgdatError."""
    with torch.no_grad():
        a = model(x)
        check_outputs(a, y)
        a, b = a.float(), model(x).float()
    probs = bool(a.min() >= 0 and a.max() <= 1 and torch.allclose(a.sum(1), torch.ones_like(a[:, 0]), atol=1e-4))
    diff = (a - b).abs().max().item()
    return [
        MaskingFinding("probability_outputs", probs, float(probs),
                       "the model outputs probabilities (rows in [0,1] summing to 1), not logits: a softmax at the "
                       "end saturates the cross-entropy and masks gradients; remove it" if probs else
                       "outputs are logits (not probabilities)"),
        MaskingFinding("randomised_outputs", diff > 1e-4, diff,
                       f"two forward passes on the same input differ by up to {diff:.3g}: the model is randomised, so "
                       "gradient attacks see noise; evaluate with EOT or make it deterministic" if diff > 1e-4 else
                       "two forward passes agree (deterministic model)"),
    ]


def _gradient_guard(model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_zero_share: float) -> MaskingFinding:
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
    share = (g.flatten(1).abs().sum(1) == 0).float().mean().item()
    fired = share > max_zero_share
    return MaskingFinding("zero_input_gradients", fired, share,
                          f"{share:.1%} of points have an exactly zero input gradient (threshold "
                          f"{max_zero_share:.0%}): gradient attacks cannot move them (quantisation, saturated "
                          "softmax, non-differentiable layers); trust black-box or BPDA results instead" if fired else
                          f"{share:.1%} of points have a zero input gradient")


def _monotonicity_guards(accs: dict[str, float], tol: float) -> list[MaskingFinding]:
    """PGD-4K must not beat PGD-K by more than ``tol``; PGD at 2 eps must not leave more accuracy than at eps."""
    steps_rise = accs["pgd_more_steps"] - accs["pgd"]
    eps_rise = accs["pgd_double_eps"] - accs["pgd"]
    return [
        MaskingFinding("accuracy_rises_with_steps", steps_rise > tol, steps_rise,
                       f"robust accuracy rises from {accs['pgd']:.3f} to {accs['pgd_more_steps']:.3f} with 4x more "
                       "PGD steps: a stronger attack cannot make a model more robust, so the gradients mislead the "
                       "attack (masked or obfuscated)" if steps_rise > tol else
                       f"4x more PGD steps change robust accuracy by {steps_rise:+.3f}"),
        MaskingFinding("accuracy_rises_with_eps", eps_rise > tol, eps_rise,
                       f"robust accuracy rises from {accs['pgd']:.3f} to {accs['pgd_double_eps']:.3f} when eps is "
                       "doubled: a larger ball contains the smaller one, so the attack is failing (masked "
                       "gradients)" if eps_rise > tol else f"doubling eps changes robust accuracy by {eps_rise:+.3f}"),
    ]


def _attack_guards(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str, steps: int,
                   queries: int, seed: int, tol: float, huge_eps_max_acc: float) -> list[MaskingFinding]:
    accs = {
        "pgd": _pgd_acc(model, x, y, eps=eps, norm=norm, steps=steps, seed=seed),
        "pgd_more_steps": _pgd_acc(model, x, y, eps=eps, norm=norm, steps=4 * steps, seed=seed),
        "pgd_double_eps": _pgd_acc(model, x, y, eps=2 * eps, norm=norm, steps=steps, seed=seed),
    }
    white = min(accs["pgd"], accs["pgd_more_steps"])
    black = _accuracy(model, random_search(model, x, y, eps=eps, norm=norm, queries=queries, seed=seed), y)
    big_eps = 1.0 if norm == "linf" else float(x[0].numel()) ** 0.5
    acc_big = _pgd_acc(model, x, y, eps=big_eps, norm=norm, steps=steps, seed=seed)
    bb_fired = black < white - tol
    return [
        *_monotonicity_guards(accs, tol),
        MaskingFinding("black_box_beats_white_box", bb_fired, white - black,
                       f"a gradient-free random search ({queries} queries) leaves {black:.3f} accuracy, below PGD's "
                       f"{white:.3f}: when an attack that never sees gradients wins, the gradients are masked and the "
                       "white-box number overestimates robustness" if bb_fired else
                       f"random search ({black:.3f}) does not beat PGD ({white:.3f})"),
        MaskingFinding("huge_eps_not_broken", acc_big > huge_eps_max_acc, acc_big,
                       f"PGD at eps={big_eps:.3g} ({norm}, the whole image box) leaves accuracy {acc_big:.3f} > "
                       f"{huge_eps_max_acc:.2f}: any image is reachable, so ~0 is expected; the attack cannot use the "
                       "gradients" if acc_big > huge_eps_max_acc else f"PGD at eps={big_eps:.3g} leaves {acc_big:.3f}"),
    ]


def masking_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
                   steps: int = 10, queries: int = 200, seed: int = 0, tol: float = 0.03,
                   max_zero_grad_share: float = 0.1, huge_eps_max_acc: float = 0.05, on_oom: str = "raise",
                   batch_option: BatchOption = API_BATCH) -> list[MaskingFinding]:
    """Run every gradient-masking guard on one batch (x (B, C, H, W) in [0,1], y (B,)); model mode is restored.

    eps: the evaluation radius (pixel units, > 0). steps: PGD steps of the reference attack (also run with 4x steps
    and 2x eps). queries: forward passes of the black-box random search. tol: accuracy slack (fraction) before a
    comparison fires. Cost: about (7 * steps + queries) forward passes of the batch. Out of memory on the whole
    batch (any device): ``on_oom="raise"`` raises a PgdatError naming ``batch_option`` and the largest size that
    fits; ``"halve"`` runs the guards on the first half of the batch (repeatedly), with a warning.
    """
    check_inputs(x, y)
    ThreatModel(norm, eps)
    if eps <= 0:
        raise PgdatError(f"masking checks need eps > 0 (got {eps}): they compare attacks inside the eps ball")
    if steps < 1 or queries < 1:
        raise PgdatError(f"masking checks need steps >= 1 and queries >= 1 (got {steps}, {queries})")
    def guards(k: int) -> list[MaskingFinding]:
        xk, yk = x[:k], y[:k]
        with attack_mode(model, "eval"):
            findings = _output_guards(model, xk, yk)
            findings.append(_gradient_guard(model, xk, yk, max_zero_grad_share))
            return findings + _attack_guards(model, xk, yk, eps=eps, norm=norm, steps=steps, queries=queries,
                                             seed=seed, tol=tol, huge_eps_max_acc=huge_eps_max_acc)

    return on_prefix(guards, x.shape[0], x.device, batch_option, "masking checks", on_oom)[0]


def fired(findings: list[MaskingFinding]) -> list[MaskingFinding]:
    """The guards that fired."""
    return [f for f in findings if f.fired]
