"""Curvature diagnostics: Hessian eigenvalues against exact values, FD vs autograd, alignment, span share, gap."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pgdat.analysis.curvature import (
    fgsm_pgd_gap,
    gradient_alignment,
    hvp,
    input_hessian_top_eigs,
    span_energy_share,
)
from pgdat.errors import PgdatError

Y3 = torch.zeros(3, dtype=torch.long)


def _psd(d, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, d, generator=g, dtype=torch.float64)
    return (m @ m.T).float()


@pytest.mark.parametrize("method", ["autograd", "fd"])
def test_quadratic_loss_recovers_eig_a(method):
    a = _psd(12)
    quad = lambda model, x, y: 0.5 * ((x.flatten(1) @ a) * x.flatten(1)).sum(1)  # noqa: E731
    x = torch.randn(3, 1, 3, 4)
    top = input_hessian_top_eigs(None, x, Y3, k=3, method=method, iters=60, loss_fn=quad,
                                 generator=torch.Generator().manual_seed(0))
    exact = torch.linalg.eigvalsh(a.double()).flip(0)[:3].float()
    assert torch.allclose(top, exact.expand(3, 3), rtol=1e-3)


def test_linear_softmax_model_matches_exact_input_hessian():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(6, 4)).double()
    x, y = torch.rand(5, 1, 2, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1])
    w = lin[1].weight.detach()
    top = input_hessian_top_eigs(lin, x, y, k=3, iters=5, loss_fn=lambda m, xx, yy: F.cross_entropy(
        m(xx), yy, reduction="none"), generator=torch.Generator().manual_seed(1))
    for i in range(5):  # H_i = W^T (diag p - p p^T) W, rank <= 3: a 3-dim subspace holds its whole range
        p = F.softmax(lin(x[i:i + 1]), 1)[0]
        exact = torch.linalg.eigvalsh(w.T @ (torch.diag(p) - torch.outer(p, p)) @ w).max()
        assert float(top[i, 0].detach()) == pytest.approx(float(exact), rel=1e-4)


def test_fd_converges_to_autograd_on_a_smooth_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.Softplus(), nn.Linear(16, 3)).double()
    x, y, v = torch.rand(4, 1, 2, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0]), torch.randn(4, 1, 2, 4).double()
    ce64 = lambda m, xx, yy: F.cross_entropy(m(xx), yy, reduction="none")  # noqa: E731  (fp64: no fp32 round-off)
    exact = hvp(net, x, y, v, loss_fn=ce64)
    errs = [(hvp(net, x, y, v, method="fd", h=h, loss_fn=ce64) - exact).abs().max().item() for h in (1e-1, 1e-2, 1e-3)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-5
    with pytest.raises(PgdatError, match="method"):
        hvp(net, x, y, v, method="lanczos")


def test_alignment_is_one_for_a_linear_loss_and_span_share_is_exact():
    lin = lambda model, x, y: (x.flatten(1) * torch.arange(1.0, 7.0)).sum(1)  # noqa: E731  constant gradient
    cos = gradient_alignment(None, torch.rand(3, 1, 2, 3), Y3, 0.1, loss_fn=lin)
    assert torch.allclose(cos, torch.ones(3))
    v = torch.zeros(2, 1, 2, 3)
    v[0, 0, 0, 0], v[1, 0, 1, 2] = 1.0, -1.0
    delta = torch.tensor([[1.0, 0, 0, 0, 0, 1.0], [0, 3.0, 0, 0, 0, 4.0], [0, 0, 0, 0, 0, 0]]).view(3, 1, 2, 3)
    share = span_energy_share(delta, torch.cat([v, -v]))  # dependent rows do not change the span
    assert share[:2].tolist() == pytest.approx([1.0, 16 / 25]) and torch.isnan(share[2])


def test_fgsm_pgd_gap_is_consistent(tiny_model, tiny_batch):
    x, y = tiny_batch
    res = fgsm_pgd_gap(tiny_model, x, y, eps=0.1, attack="pgd-10")
    assert 0 <= res["pgd_acc"] <= res["fgsm_acc"] + 0.05
    assert res["gap"] == pytest.approx(res["fgsm_acc"] - res["pgd_acc"])
