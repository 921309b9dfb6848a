"""Post-hoc BatchNorm recalibration (cumulative average over clean / adversarial / mixed batches)."""

from __future__ import annotations

import pytest
import torch

from pgdat.analysis.bn_recalibrate import recalibrate_bn
from pgdat.errors import PgdatError


def test_clean_recalibration_is_the_exact_average(tiny_model, tiny_batch):
    x, y = tiny_batch
    tiny_model.bn.running_mean.fill_(5.0)
    n = recalibrate_bn(tiny_model, [(x[:32], y[:32]), (x[32:], y[32:])])
    assert n == 64 and not tiny_model.training and tiny_model.bn.momentum == 0.1
    with torch.no_grad():
        h = tiny_model.conv(x)
    means = torch.stack([h[:32].mean((0, 2, 3)), h[32:].mean((0, 2, 3))]).mean(0)  # cumulative average of batches
    torch.testing.assert_close(tiny_model.bn.running_mean, means, rtol=1e-5, atol=1e-5)


def test_adv_and_mixed_sources_differ_from_clean(tiny_model, tiny_batch):
    x, y = tiny_batch
    attack = {"eps": 0.3, "step_size": 0.1, "steps": 3}
    stats = {}
    for source in ("clean", "adv", "mixed"):
        recalibrate_bn(tiny_model, [(x, y)], source=source, attack=attack)
        stats[source] = tiny_model.bn.running_var.clone()
    assert not torch.allclose(stats["clean"], stats["adv"])
    assert not torch.allclose(stats["mixed"], stats["adv"])
    with pytest.raises(PgdatError, match="attack"):
        recalibrate_bn(tiny_model, [(x, y)], source="adv")
    with pytest.raises(PgdatError, match="BatchNorm"):
        recalibrate_bn(torch.nn.Linear(2, 2), [(x, y)])
