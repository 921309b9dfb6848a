"""fp16 autocast in the ascent loop: confidently classified examples must still get a nonzero input gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pgdat.attacks.core import AttackSpec, ascend
from pgdat.attacks.losses import cross_entropy
from pgdat.threat import ThreatModel


def _saturated_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An MLP whose logit margins reach ~50 (softmax tails far below fp16's smallest subnormal, 6e-8), the
    images (32, 1, 4, 4) and its own predictions as labels."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        model[3].weight.mul_(200)
    x = torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _fp16_autocast_works() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float16
    except RuntimeError:
        return False


@pytest.mark.skipif(not _fp16_autocast_works(), reason="this torch has no fp16 autocast on the CPU")
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fp16_attack_moves_every_example_fp32_moves(norm):
    model, x, y = _saturated_mlp()
    spec = AttackSpec(ThreatModel(norm, 0.1), step_size=0.01, steps=1, init="zero")
    d32 = ascend(model, x, y, spec, cross_entropy, precision="fp32")
    d16 = ascend(model, x, y, spec, cross_entropy, precision="fp16")  # ascend takes a resolved precision
    moved32 = d32.flatten(1).abs().amax(1) > 0
    moved16 = d16.flatten(1).abs().amax(1) > 0
    assert moved32.sum() >= 0.9 * len(y)
    stuck = moved32 & ~moved16
    assert not stuck.any(), f"{int(stuck.sum())} of {len(y)} examples got a zero fp16 input gradient"
    cos = nn.functional.cosine_similarity(d16.flatten(1), d32.flatten(1), dim=1)
    assert (cos[moved32] > 0.8).all()  # the fp32 step's direction, up to fp16 rounding of tiny coordinates


@pytest.mark.skipif(not _fp16_autocast_works(), reason="this torch has no fp16 autocast on the CPU")
def test_fp16_train_mode_attack_moves_a_batch_of_confident_examples():
    # train mode rescales the whole batch at once (BatchNorm couples the examples): a batch whose examples are all
    # confidently classified (margins 18-30, softmax tails 1e-8..1e-13) must still move
    model, x, y = _saturated_mlp()
    with torch.no_grad():
        top2 = model(x).topk(2, dim=1).values
    confident = (top2[:, 0] - top2[:, 1] > 18) & (top2[:, 0] - top2[:, 1] < 30)
    assert confident.sum() >= 8
    model.train()
    spec = AttackSpec(ThreatModel("linf", 0.1), step_size=0.01, steps=1, init="zero")
    d16 = ascend(model, x[confident], y[confident], spec, cross_entropy, precision="fp16")
    assert (d16.flatten(1).abs().amax(1) > 0).all()
