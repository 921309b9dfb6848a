import json
import math
import re

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


@pytest.mark.parametrize("text", ["8/255", "  8/255 ", 8 / 255, "0.0313725490196"])
def test_parse_eps_reads_fractions_and_decimals_alike(text):
    assert parse_eps(text, norm="linf") == pytest.approx(8 / 255, rel=1e-9)


@pytest.mark.parametrize("value, hint", [("8", "did you mean 8/255?"), (16, "did you mean 16/255?"),
                                         ("4.5", "did you mean 4.5/255?")])
def test_linf_eps_in_pixel_levels_is_refused_with_the_fraction(value, hint):
    with pytest.raises(PgdatError, match=re.escape(hint)) as err:
        parse_eps(value, "--eps", norm="linf")
    assert "--eps" in str(err.value) and "--eps-scale 255" in str(err.value)


def test_explicit_pixel_scale_allows_pixel_levels():
    assert parse_eps("8", norm="linf", scale=255) == pytest.approx(8 / 255)
    assert parse_eps("2", "--step-size", norm="linf", scale=255) == pytest.approx(2 / 255)
    with pytest.raises(PgdatError, match="pixel scale of eps must be one of 1, 255"):
        parse_eps("8", scale=100)


def test_eps_above_one_passes_where_no_unit_box_applies():
    # l2 radii above 1 are usual (the l2 diameter of a 32x32x3 [0,1] image is ~55); no norm: no box to compare to
    assert parse_eps("2", norm="l2") == 2.0
    assert parse_eps("8") == 8.0
    assert parse_eps("1", norm="linf") == 1.0  # the whole image box, still a valid linf radius


def test_evaluate_takes_eps_as_a_fraction_string(tiny_model, tiny_batch):
    from pgdat.eval import evaluate

    x, y = tiny_batch
    as_text = evaluate(tiny_model, x, y, attacks="clean,pgd-3", eps="8/255", step_size="2/255", batch_size=64)
    as_float = evaluate(tiny_model, x, y, attacks="clean,pgd-3", eps=8 / 255, step_size=2 / 255, batch_size=64)
    assert as_text.eps == pytest.approx(8 / 255)
    assert as_text.accuracy == as_float.accuracy
    assert torch.equal(as_text.robust, as_float.robust)
    with pytest.raises(PgdatError, match=re.escape("did you mean 8/255?")):
        evaluate(tiny_model, x, y, attacks="clean,pgd-3", eps=8, batch_size=64)


def test_cli_eval_refuses_eps_8_and_takes_it_with_pixel_scale(tmp_path, capsys):
    from pgdat.cli.main import main

    base = ["eval", "--model", "small_cnn", "--attacks", "clean,pgd-2", "--n", "16", "--batch-size", "16"]
    assert main(base + ["--eps", "8"]) == 2
    assert "did you mean 8/255?" in capsys.readouterr().err
    out = tmp_path / "eval.json"
    assert main(base + ["--eps", "8", "--eps-scale", "255", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["eps"] == pytest.approx(8 / 255)


def test_config_attack_eps_in_pixel_levels_says_did_you_mean():
    from pgdat.config import load_config
    from pgdat.training.validate import validate_config

    with pytest.raises(PgdatError, match=re.escape("did you mean 8/255?")):
        validate_config(load_config(None, ["attack.eps=8"]))
    assert load_config(None, ["attack.eps=8/255"]).attack.eps == pytest.approx(8 / 255)
