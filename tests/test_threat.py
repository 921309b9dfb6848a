import math

import pytest
import torch

from pgdat.errors import PgdatError
from pgdat.threat import ThreatModel, parse_eps


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_init_inside_ball(norm):
    tm = ThreatModel(norm, 0.1)
    x = torch.rand(500, 3, 4, 4)
    d = tm.random_init(x, generator=torch.Generator().manual_seed(0))
    assert (tm.norm_of(d) <= 0.1 + 1e-6).all()
    # uniform in the ball: a good share of the points lie near the boundary in high dimension
    assert tm.norm_of(d).mean() > 0.08


def test_l2_init_is_uniform_in_ball_in_low_dimension():
    tm = ThreatModel("l2", 1.0)
    d = tm.random_init(torch.zeros(20000, 2), generator=torch.Generator().manual_seed(0))
    r = tm.norm_of(d)
    # for the uniform distribution on the unit disc, P(r <= 1/2) = 1/4
    assert abs((r <= 0.5).float().mean().item() - 0.25) < 0.02


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_project_stays_in_ball_and_box(norm):
    tm = ThreatModel(norm, 0.05)
    x = torch.rand(64, 3, 8, 8)
    d = torch.randn_like(x)
    p = tm.project(x, d)
    assert (tm.norm_of(p) <= 0.05 + 1e-6).all()
    assert ((x + p) >= 0).all() and ((x + p) <= 1 + 1e-7).all()


def test_l2_projection_is_radial():
    tm = ThreatModel("l2", 1.0)
    d = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(tm.project_ball(d), torch.tensor([[0.6, 0.8]]))
    inside = torch.tensor([[0.3, 0.4]])
    assert torch.equal(tm.project_ball(inside), inside)


def test_steps_have_unit_dual_norm():
    g = torch.randn(8, 3, 4, 4)
    assert torch.equal(ThreatModel("linf", 1).ascent_direction(g), g.sign())
    n = ThreatModel("l2", 1).ascent_direction(g).flatten(1).norm(dim=1)
    assert torch.allclose(n, torch.ones(8), atol=1e-5)


def test_parse_eps_and_errors():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.031") == pytest.approx(0.031)
    assert parse_eps(0.5) == 0.5
    with pytest.raises(PgdatError, match="8/255"):
        parse_eps("eight")
    with pytest.raises(PgdatError, match="eps must be"):
        ThreatModel("linf", -0.1)
    with pytest.raises(PgdatError, match="eps must be"):
        ThreatModel("linf", math.nan)
    with pytest.raises(PgdatError, match="valid norms: linf, l2"):
        ThreatModel("l1", 0.1)


@pytest.mark.parametrize("scale", [1e-9, 1e-13, 1e-20, 1e-30])
def test_l2_step_has_unit_norm_for_tiny_gradients(scale):
    # a confidently classified example has a tiny loss gradient; the L2 step must still have length step_size
    # (an additive epsilon in g / (||g|| + eps) shrank it to ~nothing, and its squares underflow in the norm)
    g = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * scale
    g[3] = 0.0  # and a zero gradient gives a zero step, not NaN
    d = ThreatModel("l2", 1).ascent_direction(g)
    n = d.flatten(1).norm(dim=1)
    assert torch.allclose(n[torch.arange(8) != 3], torch.ones(7), atol=1e-5)
    assert torch.equal(d[3], torch.zeros_like(d[3]))
    assert torch.allclose(d[0], (g[0].double() / g[0].double().norm()).float(), atol=1e-6)
