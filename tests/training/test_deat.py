"""DEAT optimizer: k=0 is SGD bit for bit; the drift combines alternating buffers as specified."""

import copy
import math

import pytest
import torch

from pgdat.config import OptimConfig
from pgdat.training.deat import DiffusionEnhancedSGD
from pgdat.training.optim import build_optimizer


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _train(model, opt, steps=7):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("foreach", [False, True])
def test_k0_equals_sgd_bit_for_bit(momentum, foreach):
    a, b = _model(), _model()
    _train(a, torch.optim.SGD(a.parameters(), lr=0.1, momentum=momentum, weight_decay=5e-4, foreach=foreach))
    opt = DiffusionEnhancedSGD(b.parameters(), lr=0.1, k=0.0, beta=0.0, momentum=momentum, weight_decay=5e-4)
    _train(b, opt)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_drift_is_positive_negative_combination():
    """No momentum, beta 0, no wd: step t moves by -lr * ((1+k) g_t - k g_{t-1}) (g_0 = 0)."""
    p = torch.nn.Parameter(torch.zeros(3))
    opt = DiffusionEnhancedSGD([p], lr=0.5, k=2.0, momentum=0.0, weight_decay=0.0)
    grads = [torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 1.0, -1.0]), torch.tensor([3.0, 1.0, 0.0])]
    expected, prev = torch.zeros(3), torch.zeros(3)
    for g in grads:
        p.grad = g.clone()
        opt.step()
        expected -= 0.5 * (3 * g - 2 * prev)
        prev = g
        assert torch.allclose(p.detach(), expected)


def test_normalisation_and_telescoping_sum():
    """Normalised drift divides by sqrt((1+k)^2 + k^2); the summed drift telescopes to sum(g) + k g_T."""
    k = 1.0
    p = torch.nn.Parameter(torch.zeros(2))
    opt = DiffusionEnhancedSGD([p], lr=1.0, k=k, momentum=0.0, weight_decay=0.0, normalize=True)
    gs = [torch.randn(2) for _ in range(6)]
    for g in gs:
        p.grad = g.clone()
        opt.step()
    total = sum(gs) + k * gs[-1]
    assert torch.allclose(-p.detach(), total / math.sqrt((1 + k) ** 2 + k ** 2), atol=1e-6)


def test_state_dict_roundtrip_and_registry():
    m = _model()
    opt = build_optimizer(m.parameters(), OptimConfig(name="deat", lr=0.05, deat_k=1.0))
    assert isinstance(opt, DiffusionEnhancedSGD)
    _train(m, opt, steps=3)
    m2 = copy.deepcopy(m)
    opt2 = build_optimizer(m2.parameters(), OptimConfig(name="deat", lr=0.05, deat_k=1.0))
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch shares, not copies, same-device tensors
    _train(m, opt, steps=2)
    _train(m2, opt2, steps=2)
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), m2.parameters(), strict=True))
