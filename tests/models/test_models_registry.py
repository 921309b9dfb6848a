"""Every registered architecture: shapes, gradients, memory formats, autocast, init, options and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.models import MODELS, create_model, layer_groups, model_names, model_options

# name -> (small options, input shape (C, H, W)) for the models cheap enough to run forward in tests
SMALL = {
    "small_cnn": ({}, (1, 28, 28)),
    "preact_resnet18": ({"width": 8}, (3, 32, 32)),
    "resnet18": ({"width": 8}, (3, 32, 32)),
    "wide_resnet": ({"depth": 10, "widen_factor": 1}, (3, 32, 32)),
    "lowpass": ({"base": "small_cnn", "bandwidth": 8}, (1, 28, 28)),
}
# name -> (options, expected parameter count in millions at 10 classes); built only, never run
HEAVY = {
    "preact_resnet18": ({}, 11.17),
    "resnet18": ({}, 11.17),
    "wrn28_10": ({}, 36.48),
    "wrn34_10": ({}, 46.16),
    "wide_resnet": ({"depth": 28, "widen_factor": 10}, 36.48),
}


def build(name: str, num_classes: int = 10, **extra) -> tuple[nn.Module, torch.Tensor]:
    """A small instance of ``name`` and a batch (4, C, H, W) of images in [0,1] for it."""
    opts, (c, h, w) = SMALL[name]
    model = create_model(name, num_classes, in_channels=c, **opts, **extra)
    return model, torch.rand(4, c, h, w, generator=torch.Generator().manual_seed(1))


def test_every_registered_model_is_covered_by_these_tests():
    assert set(model_names()) <= set(SMALL) | set(HEAVY)
    assert {"small_cnn", "preact_resnet18", "resnet18", "wide_resnet", "wrn28_10", "wrn34_10"} <= set(MODELS)
    assert model_names() == sorted(model_names())


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("num_classes", [2, 7])
def test_output_is_logits_of_shape_batch_by_classes(name, num_classes):
    model, x = build(name, num_classes)
    out = model.eval()(x)
    assert out.shape == (4, num_classes) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # raw logits, not probabilities


def test_small_cnn_works_on_32x32_colour_images():
    model = create_model("small_cnn", 10, in_channels=3, input_size=32)
    assert model.net.linear1.in_features == 64 * 8 * 8
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model, x = build(name)
    loss = nn.functional.cross_entropy(model.train()(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    params = dict(model.named_parameters())
    assert params
    missing = [n for n, p in params.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("name", sorted(SMALL))
def test_input_gradient_flows_through_normalisation(name):
    model, x = build(name, mean=[0.5] * SMALL[name][1][0], std=[0.25] * SMALL[name][1][0])
    x.requires_grad_(True)
    model.eval()(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(SMALL))
def test_channels_last_matches_contiguous(name):
    model, x = build(name)
    model.eval()
    ref = model(x)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_bf16_autocast_forward_and_backward(name):
    model, x = build(name)
    model.eval()
    ref = model(x)
    x.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
    assert torch.allclose(out.float(), ref, rtol=0.1, atol=0.05)
    out.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(SMALL))
def test_init_is_deterministic_given_the_seed(name):
    states = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        states.append(build(name)[0].state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_state_dict_holds_normalisation_and_round_trips(name):
    c = SMALL[name][1][0]
    model, x = build(name, mean=[0.4] * c, std=[0.2] * c)
    sd = model.state_dict()
    assert {"normalize.mean", "normalize.std"} <= sd.keys()
    assert sd["normalize.mean"].shape == (1, c, 1, 1)
    assert all(k.startswith(("normalize.", "net.")) for k in sd)
    fresh, _ = build(name)  # identity normalisation, other random weights: same layout
    assert fresh.state_dict().keys() == sd.keys()
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_parameter_counts_of_full_size_models(name):
    opts, millions = HEAVY[name]
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = create_model(name, 10, **opts)
    count = sum(p.numel() for p in model.parameters())
    assert count / 1e6 == pytest.approx(millions, abs=0.02)


def test_wide_resnet_presets_equal_explicit_depth_and_width():
    for preset, depth in (("wrn28_10", 28), ("wrn34_10", 34)):
        with torch.device("meta"):
            a = create_model(preset).state_dict()
            b = create_model("wide_resnet", depth=depth, widen_factor=10).state_dict()
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert model_options("wrn34_10") == {"dropout": 0.0}


def test_wide_resnet_dropout_is_active_only_in_training():
    model, x = build("wide_resnet", dropout=0.3)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_layer_groups_list_every_weight_layer_in_forward_order(name):
    model, x = build(name)
    seen: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(names[mod]))
             for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    model.eval()(x)
    for h in hooks:
        h.remove()
    groups = layer_groups(model)
    assert [n for n, _ in groups] == seen
    assert groups[0][1] == "stem" and groups[-1][1] == "head"
    assert all(isinstance(model.get_submodule(n), nn.Conv2d | nn.Linear) for n, _ in groups)


def test_layer_group_labels_name_blocks():
    model = create_model("preact_resnet18", width=4)
    labels = dict(layer_groups(model))
    assert labels["net.conv1"] == "stem" and labels["net.linear"] == "head"
    assert labels["net.layer1.0.conv2"] == "layer1.0"
    assert labels["net.layer3.0.shortcut.0"] == "layer3.0"
    assert [lab for lab in dict.fromkeys(labels.values())] == (
        ["stem"] + [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)] + ["head"])
    wrn = dict(layer_groups(create_model("wide_resnet", depth=16, widen_factor=1)))
    assert wrn["net.block2.layer.1.conv1"] == "block2.layer.1" and wrn["net.fc"] == "head"
    assert dict(layer_groups(create_model("small_cnn", in_channels=1))) == {
        "net.conv1": "stem", "net.conv2": "conv2", "net.linear1": "linear1", "net.linear2": "head"}


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(PgdatError, match="unknown model 'resnet19'.*preact_resnet18.*wrn34_10"):
        create_model("resnet19")


def test_unknown_option_names_it_and_the_valid_ones():
    with pytest.raises(PgdatError, match=r"resnet18' has no option depth; valid options: width"):
        create_model("resnet18", depth=34)
    with pytest.raises(PgdatError, match=r"no option widen; valid options: depth, dropout, widen_factor"):
        create_model("wide_resnet", widen=2)
    with pytest.raises(PgdatError, match=r"no option width; valid options: dropout"):
        create_model("wrn28_10", width=4)


@pytest.mark.parametrize("depth", [4, 12, 29, 0])
def test_bad_wide_resnet_depth_is_rejected(depth):
    with pytest.raises(PgdatError, match="depth"):
        create_model("wide_resnet", depth=depth, widen_factor=1)


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        ("resnet18", {"num_classes": 1}, "num_classes"),
        ("resnet18", {"in_channels": 0}, "in_channels"),
        ("resnet18", {"width": 0}, "width"),
        ("preact_resnet18", {"width": 2.5}, "width"),
        ("wide_resnet", {"dropout": 1.0}, "dropout"),
        ("wide_resnet", {"widen_factor": True}, "widen_factor"),
        ("small_cnn", {"input_size": 2}, "input_size"),
        ("small_cnn", {"mean": [0.5, 0.5], "std": [0.2, 0.2], "in_channels": 1}, "one value per channel"),
    ],
)
def test_bad_option_values_give_pgdat_errors(name, kwargs, pattern):
    with pytest.raises(PgdatError, match=pattern):
        create_model(name, **kwargs)
