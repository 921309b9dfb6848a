"""small_cnn: advertorch LeNet5 layout, so its MNIST state_dicts load into ``model.net``."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from pgdat.models import create_model

ADVERTORCH_SHAPES = {
    "conv1.weight": (32, 1, 3, 3), "conv1.bias": (32,),
    "conv2.weight": (64, 32, 3, 3), "conv2.bias": (64,),
    "linear1.weight": (200, 64 * 7 * 7), "linear1.bias": (200,),
    "linear2.weight": (10, 200), "linear2.bias": (10,),
}


def fake_advertorch_state_dict() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: 0.05 * torch.randn(shape, generator=g) for k, shape in ADVERTORCH_SHAPES.items()}


def advertorch_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """advertorch's LeNet5 forward, written out with the functional API (NCHW flatten via view)."""
    out = F.max_pool2d(F.relu(F.conv2d(x, sd["conv1.weight"], sd["conv1.bias"], padding=1)), 2)
    out = F.max_pool2d(F.relu(F.conv2d(out, sd["conv2.weight"], sd["conv2.bias"], padding=1)), 2)
    out = F.relu(F.linear(out.view(out.size(0), -1), sd["linear1.weight"], sd["linear1.bias"]))
    return F.linear(out, sd["linear2.weight"], sd["linear2.bias"])


def test_advertorch_lenet5_state_dict_loads_strictly_and_computes_the_same_function():
    sd = fake_advertorch_state_dict()
    model = create_model("small_cnn", 10, in_channels=1)
    assert {k: tuple(v.shape) for k, v in model.net.state_dict().items()} == ADVERTORCH_SHAPES
    model.net.load_state_dict(sd)  # strict: same keys, same shapes
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(model.eval()(x), advertorch_forward(sd, x), atol=1e-5)
    channels_last = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(channels_last, advertorch_forward(sd, x), atol=1e-5)
