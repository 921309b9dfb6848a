"""pgdat's PGD against an independent reference loop written here (Madry/Rice ascent, same random start)."""

import torch
import torch.nn.functional as F

from pgdat.attacks import pgd


def reference_pgd_linf(model, x, y, eps, alpha, steps, gen):
    """A 15-line textbook PGD: uniform start, sign steps, clip to the ball and the box."""
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def test_pgd_matches_reference_loop(tiny_model, tiny_batch):
    x, y = tiny_batch
    ref = reference_pgd_linf(tiny_model, x, y, 0.25, 0.05, 10, torch.Generator().manual_seed(7))
    ours = pgd(tiny_model, x, y, eps=0.25, step_size=0.05, steps=10, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        acc_ref = tiny_model(ref).argmax(1).eq(y).float().mean()
        acc_ours = tiny_model(ours).argmax(1).eq(y).float().mean()
    assert acc_ours == acc_ref
    assert acc_ours < tiny_model(x).argmax(1).eq(y).float().mean()  # the attack does something
    assert torch.allclose(ours, ref, atol=1e-6)
