"""Curvature and non-linearity diagnostics of catastrophic overfitting: top input-Hessian eigenvalues (per example,
by Hessian-vector products and subspace power iteration), the GradAlign cosine, the share of a perturbation's energy
inside span(V) and the FGSM-vs-PGD accuracy gap.

Run the model in eval mode: examples then decouple, the Hessian of the summed loss is block-diagonal and its blocks
are the per-example Hessians, so every eigenvalue here is per example (B,) (the batch's top eigenvalue is the max).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pgdat.attacks.core import attack_mode
from pgdat.errors import PgdatError
from pgdat.threat import UNIT_BOX

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (model, x, y) -> per-example loss (B,)
METHODS = ("autograd", "fd")


def ce_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy (B,) of ``model`` at x."""
    return F.cross_entropy(model(x).float(), y, reduction="none")


def input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = ce_loss, *,
               create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x of the summed loss (B, ...), the leaf x it was taken at)."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(model, x, y).sum(), x, create_graph=create_graph)
    return g, x


def hvp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, *, loss_fn: LossFn = ce_loss,
        method: str = "autograd", h: float = 1e-3) -> torch.Tensor:
    """Per-example input-Hessian-vector products H_i v_i (shaped like x).

    ``autograd``: exact double backprop, grad_x <grad_x L, v>. ``fd``: central difference
    [g(x + h v) - g(x - h v)] / (2h) (registers ReLU pattern changes within radius h)."""
    if method == "autograd":
        g, xl = input_grad(model, x, y, loss_fn, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), xl)
        return hv.detach()
    if method == "fd":
        g_plus, _ = input_grad(model, x + h * v, y, loss_fn)
        g_minus, _ = input_grad(model, x - h * v, y, loss_fn)
        return (g_plus - g_minus) / (2 * h)
    raise PgdatError(f"Hessian method must be one of {', '.join(METHODS)} (got '{method}')")


def input_hessian_top_eigs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int = 1, *,
                           method: str = "autograd", h: float = 1e-3, iters: int = 30, loss_fn: LossFn = ce_loss,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Top-``k`` eigenvalues (B, k), descending, of each example's input Hessian of ``loss_fn``.

    Subspace (block power) iteration with per-example QR and a final Rayleigh-Ritz step; it converges to the
    eigenvalues of largest magnitude (for ReLU networks the a.e. Hessian is PSD, so these are the largest)."""
    if k < 1 or iters < 1:
        raise PgdatError(f"k and iters must be >= 1 (got k={k}, iters={iters})")
    b, d = x.shape[0], x[0].numel()
    if k > d:
        raise PgdatError(f"k={k} exceeds the input dimension {d}")
    gen_device = generator.device if generator is not None else x.device
    basis = torch.randn(b, d, k, generator=generator, device=gen_device).to(x.device, torch.float32)
    basis, _ = torch.linalg.qr(basis)

    def apply(basis: torch.Tensor) -> torch.Tensor:  # (B, D, k) -> (B, D, k)
        cols = [hvp(model, x, y, basis[:, :, j].reshape_as(x), loss_fn=loss_fn, method=method, h=h).flatten(1)
                for j in range(k)]
        return torch.stack(cols, dim=2).float()

    for _ in range(iters):
        basis, _ = torch.linalg.qr(apply(basis))
    small = basis.transpose(1, 2) @ apply(basis)  # (B, k, k) Rayleigh quotient matrix
    evals = torch.linalg.eigvalsh(0.5 * (small + small.transpose(1, 2)))
    return evals.flip(-1)


def gradient_alignment(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                       generator: torch.Generator | None = None, loss_fn: LossFn = ce_loss) -> torch.Tensor:
    """GradAlign cosine (B,) between grad_x l(x) and grad_x l(x + eta), eta ~ U[-eps, eps]; NaN where a gradient
    is zero (GradAlign drops those examples)."""
    gen_device = generator.device if generator is not None else x.device
    eta = (2 * torch.rand(x.shape, generator=generator, device=gen_device) - 1).to(x.device) * eps
    g1 = input_grad(model, x, y, loss_fn)[0].flatten(1)
    g2 = input_grad(model, x + eta, y, loss_fn)[0].flatten(1)
    n1, n2 = g1.norm(dim=1), g2.norm(dim=1)
    cos = (g1 * g2).sum(1) / (n1 * n2).clamp_min(1e-30)
    return torch.where((n1 > 0) & (n2 > 0), cos, torch.full_like(cos, float("nan")))


def row_space_basis(v: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis (r, D) float64 of the span of the rows of ``v`` (K, ...), r = rank (SVD, relative tol 1e-9)."""
    _, sv, vh = torch.linalg.svd(v.flatten(1).double(), full_matrices=False)
    return vh[sv > 1e-9 * sv.max()]


def span_energy_share(delta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """||P_V delta||^2 / ||delta||^2 per example (B,), P_V the orthogonal projector onto the span of the rows of
    ``v`` (K, ...) (e.g. the injected carriers); NaN for a zero perturbation."""
    flat = delta.flatten(1).double()
    inside = (flat @ row_space_basis(v).to(flat.device).T).pow(2).sum(1)
    total = flat.pow(2).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, float("nan"))).float()


def fgsm_pgd_gap(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
                 attack: str = "pgd-10", batch_size: int = 256, seed: int = 0,
                 box: tuple[float, float] | None = UNIT_BOX) -> dict[str, float]:
    """``fgsm_acc`` (accuracy on FGSM points, zero init, step eps; *not* a cascade after clean, so label leaking
    can put it above clean accuracy), ``pgd_acc`` (robust accuracy: clean and ``attack`` correct) and
    ``gap`` = fgsm_acc - pgd_acc. A large gap with near-zero PGD accuracy is the signature of catastrophic
    overfitting. The model is evaluated in eval mode. box: pixel range of the attacks (None: eps-ball only)."""
    from pgdat.attacks import fgsm
    from pgdat.eval import evaluate

    correct = 0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = fgsm(model, xb, yb, eps=eps, norm=norm, box=box, bn_mode="eval", check=False)
        with torch.no_grad(), attack_mode(model, "eval"):
            correct += int(model(x_adv).argmax(1).eq(yb).sum())
    pgd_acc = evaluate(model, x, y, attacks=["clean", attack], eps=eps, norm=norm, batch_size=batch_size, seed=seed,
                       checks=False, box=box).robust_accuracy
    fgsm_acc = correct / max(len(y), 1)
    return {"fgsm_acc": fgsm_acc, "pgd_acc": pgd_acc, "gap": fgsm_acc - pgd_acc}
