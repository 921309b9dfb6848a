"""AT-induced distribution: induced splits, local dispersion, the IDE pipeline on a tiny run."""

import json

import pytest
import torch

from pgdat.analysis.induced import local_dispersion, perturb_split
from pgdat.cli.main import main
from pgdat.config import AttackConfig
from pgdat.data.bundle import Split


def test_perturb_split_stays_in_ball_and_box(tiny_model, tiny_batch):
    x, y = tiny_batch
    split = Split((x * 255).round().to(torch.uint8), y)
    attack = AttackConfig(eps=0.1, step_size=0.025, steps=5)
    out = perturb_split(tiny_model, split, attack, batch_size=20)
    x0 = split.x.float() / 255
    assert out.x.dtype == torch.float32 and torch.equal(out.y, y)
    assert (out.x - x0).abs().max() <= 0.1 + 1e-6 and out.x.min() >= 0 and out.x.max() <= 1
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy
        assert ce(tiny_model(out.x), y) > 1.5 * ce(tiny_model(x0), y)


def test_local_dispersion_zero_without_noise_and_positive_with(tiny_model, tiny_batch):
    x, y = tiny_batch
    det = AttackConfig(eps=0.1, step_size=0.025, steps=5, init="zero")
    assert torch.equal(local_dispersion(tiny_model, x, y, det, sigma=0.0, pairs=2), torch.zeros(64))
    g = local_dispersion(tiny_model, x, y, det, sigma=0.05, pairs=2)
    assert (g > 0).all()
    assert (g <= x[0].numel() * (2 * 0.1 + 2 * 0.05 * 6) ** 2).all()  # |Q - Q'|_inf <= 2 eps + |rho - rho'|_inf


@pytest.mark.slow
def test_analyze_induced_on_a_tiny_run(tmp_path, tiny_overrides):
    sets = [a for o in tiny_overrides + ["train.epochs=2", "train.checkpoint_every=1"] for a in ("--set", o)]
    assert main(["train", *sets, "--out", str(tmp_path / "run")]) == 0
    rc = main(["analyze", "induced", str(tmp_path / "run"), "--epochs", "1,2", "--student-epochs", "1",
               "--pairs", "1", "--n-dispersion", "8", "--student-set", "data.n_train=0"])
    assert rc == 0
    rows = json.loads((tmp_path / "run" / "induced" / "induced.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= r["induced_test_error"] <= 1 and r["local_dispersion"] > 0 and r["robust_test_acc"] is not None
    assert (tmp_path / "run" / "induced" / "induced.png").is_file()
    assert main(["analyze", "induced", str(tmp_path / "run"), "--epochs", "7"]) == 2
