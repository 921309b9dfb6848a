"""Normalize / NormalizedModel: in-model normalisation so images and eps stay in [0,1] pixel space."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.models import Normalize, NormalizedModel, create_model

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def test_normalize_buffers_are_persistent_channel_vectors():
    norm = Normalize(MEAN, STD)
    assert norm.mean.shape == norm.std.shape == (1, 3, 1, 1)
    assert set(norm.state_dict()) == {"mean", "std"}
    assert torch.allclose(norm.std.flatten(), torch.tensor(STD))
    x = torch.rand(2, 3, 5, 5)
    expected = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(norm(x), expected)


def test_normalized_model_feeds_the_normalised_input_to_the_net():
    torch.manual_seed(0)
    model = create_model("resnet18", 10, width=4, mean=MEAN, std=STD).eval()
    x = torch.rand(3, 3, 32, 32)
    manual = model.net((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    assert torch.allclose(model(x), manual, atol=1e-6)
    assert not torch.allclose(model(x), model.net(x))  # normalisation really happens


def test_no_mean_std_gives_identity_layer_with_stable_layout():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    model = NormalizedModel(net, in_channels=3)
    x = torch.rand(4, 3, 2, 2)
    assert torch.equal(model(x), net(x))
    assert model.normalize.mean.shape == (1, 3, 1, 1) and torch.all(model.normalize.std == 1)
    assert set(model.state_dict()) == set(NormalizedModel(net, MEAN, STD).state_dict())


def test_loading_a_state_dict_restores_the_normalisation():
    a = create_model("small_cnn", in_channels=1, mean=[0.1307], std=[0.3081])
    b = create_model("small_cnn", in_channels=1)
    b.load_state_dict(a.state_dict())
    assert b.normalize.mean.item() == pytest.approx(0.1307) and b.normalize.std.item() == pytest.approx(0.3081)


def test_normalisation_follows_dtype_and_device_moves():
    model = create_model("small_cnn", in_channels=1, mean=[0.5], std=[0.5]).to(torch.float64)
    assert model.normalize.mean.dtype == torch.float64
    assert model(torch.rand(2, 1, 28, 28, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    ("mean", "std", "pattern"),
    [
        ((0.5, 0.5), (0.2,), "one value per channel"),
        ((0.5,), (0.0,), "> 0"),
        ((0.5,), (-1.0,), "> 0"),
        (("a",), (1.0,), "list of numbers"),
        ((), (), "non-empty"),
        ((float("nan"),), (1.0,), "finite"),
    ],
)
def test_bad_normalisation_values_are_rejected(mean, std, pattern):
    with pytest.raises(PgdatError, match=pattern):
        Normalize(mean, std)


def test_normalized_model_argument_errors():
    net = nn.Identity()
    with pytest.raises(PgdatError, match="both"):
        NormalizedModel(net, MEAN, None)
    with pytest.raises(PgdatError, match="in_channels"):
        NormalizedModel(net)
    with pytest.raises(PgdatError, match="3 values but the model takes 1"):
        NormalizedModel(net, MEAN, STD, in_channels=1)


def test_input_with_the_wrong_channel_count_is_rejected_not_broadcast():
    colour = create_model("resnet18", 10, width=4, mean=MEAN, std=STD).eval()
    with pytest.raises(PgdatError, match=r"takes images \(B, 3, H, W\).*shape \(2, 1, 8, 8\)"):
        colour(torch.rand(2, 1, 8, 8))  # used to broadcast to 3 channels and return logits
    gray = create_model("small_cnn", in_channels=1).eval()
    with pytest.raises(PgdatError, match=r"takes images \(B, 1, H, W\)"):
        gray(torch.rand(2, 3, 28, 28))
    assert colour(torch.rand(2, 3, 8, 8)).shape == (2, 10)


def test_integer_pixels_are_rejected_not_normalised_as_unit_floats():
    gray = create_model("small_cnn", in_channels=1).eval()
    with pytest.raises(PgdatError, match=r"floating-point images in \[0,1\].*torch.uint8.*as_unit_float"):
        gray(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8))
    assert gray(torch.rand(2, 1, 28, 28, dtype=torch.float64).float()).shape == (2, 10)
