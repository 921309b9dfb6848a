"""Sanity checks in the spirit of AutoAttack's ``checks.py``: each says what a failure means for the evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pgdat.attacks.core import attack_mode, check_logits
from pgdat.attacks.pgd import pgd
from pgdat.errors import PgdatError
from pgdat.memory import API_BATCH, BatchOption, on_prefix


def check_outputs(out: torch.Tensor, y: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    """PgdatError unless a model's output on a batch with labels y (B,) is floating-point logits (B, C) covering
    every label of ``labels`` (default y): a model that returns argmax labels (integers) cannot be attacked or
    checked. One host sync (the label range)."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        kind = f"{out.dtype} tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(
            out).__name__
        raise PgdatError(f"the model returned a {kind}, not floating-point logits (B, num_classes): it looks like it "
                         "outputs predicted labels (an argmax); evaluate the network before its argmax")
    check_logits(out, y, labels)


def output_warnings(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    """Cheap checks on one batch (model in eval mode): probabilities instead of logits, randomised outputs."""
    notes = []
    with torch.no_grad():
        a, b = model(x).float(), model(x).float()
    if a.dim() != 2 or a.shape[0] != x.shape[0]:
        return [f"model output has shape {tuple(a.shape)}; expected logits (B, num_classes)"]
    if int(y.max()) >= a.shape[1] if y.numel() else False:
        notes.append(f"labels go up to {int(y.max())} but the model has only {a.shape[1]} outputs: wrong num_classes")
    if a.numel() and a.min() >= 0 and a.max() <= 1 and torch.allclose(a.sum(1), torch.ones_like(a[:, 0]), atol=1e-4):
        notes.append("model outputs look like probabilities (rows in [0,1] summing to 1), not logits: a softmax at "
                     "the end flattens the loss and masks gradients, so attacks underestimate the risk. Remove it.")
    if not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
        notes.append("two forward passes on the same input differ: the model is randomised (dropout in eval mode, "
                     "random transforms), so gradient attacks see noise. Evaluate with EOT or make it deterministic.")
    return notes


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    value: float
    message: str


def sanity_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
                  steps: int = 20, seed: int = 0, on_oom: str = "raise", batch_option: BatchOption = API_BATCH
                  ) -> list[CheckResult]:
    """Run the evaluation sanity checks on a batch (x (B, C, H, W) in [0,1], y (B,)); model mode is restored.

    - eps = 0 must give the clean accuracy exactly;
    - a huge eps (the whole image box) must drive PGD accuracy to about 0 — if not, gradients are masked;
    - input gradients of the loss must be nonzero for most points.

    Out of memory on the whole batch (any device): ``on_oom="raise"`` raises a PgdatError naming ``batch_option``
    and the largest size that fits; ``"halve"`` runs the checks on the first half of the batch, with a warning.
    """
    return on_prefix(lambda k: _sanity(model, x[:k], y[:k], eps=eps, norm=norm, steps=steps, seed=seed),
                     x.shape[0], x.device, batch_option, "sanity checks", on_oom)[0]


def _sanity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str, steps: int,
            seed: int) -> list[CheckResult]:
    with attack_mode(model, "eval"), torch.no_grad():
        logits = model(x)
        check_outputs(logits, y)
        clean = logits.argmax(1).eq(y).float().mean().item()
    gen = torch.Generator(device=x.device)
    x0 = pgd(model, x, y, eps=0.0, step_size=0.0, steps=1, norm=norm, generator=gen.manual_seed(seed))
    big_eps = 1.0 if norm == "linf" else float(x[0].numel()) ** 0.5
    xb = pgd(model, x, y, eps=big_eps, step_size=2.5 * big_eps / steps, steps=steps, norm=norm,
             generator=gen.manual_seed(seed))
    with attack_mode(model, "eval"):
        with torch.no_grad():
            acc0 = model(x0).argmax(1).eq(y).float().mean().item()
            acc_big = model(xb).argmax(1).eq(y).float().mean().item()
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xg), y, reduction="sum"), xg)
    zero_share = (g.flatten(1).abs().sum(1) == 0).float().mean().item()
    return [
        CheckResult("eps0_equals_clean", acc0 == clean, acc0,
                    f"accuracy at eps=0 is {acc0:.4f} vs clean {clean:.4f}; a difference means the attack or the "
                    "model's mode handling changes predictions without a perturbation"),
        CheckResult("huge_eps_breaks_model", acc_big <= 0.05, acc_big,
                    f"PGD-{steps} at eps={big_eps:.3g} ({norm}) leaves accuracy {acc_big:.4f}; with the whole image "
                    "box allowed it must reach ~0, otherwise gradients are masked or the attack is broken"),
        CheckResult("nonzero_input_gradients", zero_share <= 0.1, zero_share,
                    f"{zero_share:.1%} of points have an exactly zero input gradient; gradient attacks cannot move "
                    "them (saturated softmax, non-differentiable layers): use a margin loss or black-box attacks"),
    ]
