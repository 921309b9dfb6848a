"""model.bn_var (reading R1 of the NTK-AT notes): UnbiasedBatchNorm2d against the formula, nn.BatchNorm2d and the
model factory / checkpoint round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pgdat.checkpoint import load_model, model_config
from pgdat.config import load_config
from pgdat.errors import PgdatError
from pgdat.models import create_model
from pgdat.models.batchnorm import UnbiasedBatchNorm2d, convert_bn
from pgdat.training.validate import validate_config

X = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(0)) * 2 + 1  # m = 2*2*2 = 8 per channel


def _pair(momentum=0.1):
    ref = nn.BatchNorm2d(3, momentum=momentum)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        ref.bias.copy_(torch.tensor([0.0, -1.0, 0.3]))
    ours = UnbiasedBatchNorm2d(3, momentum=momentum)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def test_train_mode_normalises_with_the_unbiased_variance():
    ref, ours = _pair()
    y = ours(X)
    mean = X.mean((0, 2, 3), keepdim=True)
    var = ((X - mean) ** 2).sum((0, 2, 3), keepdim=True) / (8 - 1)
    manual = (X - mean) / torch.sqrt(var + ours.eps) * ours.weight.view(1, 3, 1, 1) + ours.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(y, manual, rtol=1e-5, atol=1e-6)
    centred = ref(X) - ref.bias.view(1, 3, 1, 1)  # biased: larger by sqrt(m / (m - 1)) (up to eps)
    torch.testing.assert_close(centred, (y - ours.bias.view(1, 3, 1, 1)) * (8 / 7) ** 0.5, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_statistics_and_eval_mode_match_pytorch(momentum):
    ref, ours = _pair(momentum)
    for k in range(3):
        ref(X + k)
        ours(X + k)
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, key), getattr(ref, key))
    ref.eval()
    ours.eval()
    torch.testing.assert_close(ours(X), ref(X))


def test_gradients_match_autograd_of_the_formula():
    ours = UnbiasedBatchNorm2d(3).double()
    x = X.double().requires_grad_(True)
    assert torch.autograd.gradcheck(ours, (x,))
    with pytest.raises(PgdatError, match="more than one value per channel"):
        ours(torch.randn(1, 3, 1, 1, dtype=torch.float64))


def test_model_factory_converts_every_batchnorm_and_keeps_the_state_dict():
    torch.manual_seed(0)
    biased = create_model("resnet18", 10, width=2)
    unbiased = create_model("resnet18", 10, width=2, bn_var="unbiased")
    bns = [m for m in unbiased.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(type(m) is UnbiasedBatchNorm2d for m in bns)
    unbiased.load_state_dict(biased.state_dict())  # same keys and shapes
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(unbiased.eval()(x), biased.eval()(x))
    small = x[:, :, :8, :8]  # the last stage sees 1x1 maps, so m = 2 per channel there
    assert not torch.allclose(unbiased.train()(small), biased.train()(small), rtol=1e-3)
    with pytest.raises(PgdatError, match="no BatchNorm2d layer"):
        create_model("small_cnn", 10, in_channels=1, bn_var="unbiased")
    with pytest.raises(PgdatError, match="valid bn_vars: biased, unbiased"):
        convert_bn(nn.Sequential(), "half")


def test_bn_var_is_saved_and_restored(tmp_path):
    from pgdat.checkpoint import save_checkpoint

    cfg = model_config("resnet18", 10, 3, None, None, bn_var="unbiased", width=2)
    model = create_model("resnet18", 10, width=2, bn_var="unbiased")
    save_checkpoint({"model": model.state_dict(), "model_config": cfg}, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert any(type(m) is UnbiasedBatchNorm2d for m in loaded.modules())
    assert model_config("resnet18", 10, 3, None, None)["bn_var"] == "biased"


def test_trainer_builds_the_configured_estimator(tmp_path):
    from pgdat.training import Trainer

    cfg = load_config("default", ["model.name=resnet18", "model.kwargs={width: 2}", "model.bn_var=unbiased",
                                  "data.n_train=64", "data.batch_size=32", "train.progress=false"])
    trainer = Trainer(cfg, tmp_path, callbacks=[]).start()  # start(): writes init.pt
    assert trainer.model_cfg["bn_var"] == "unbiased" and trainer.header["bn_var"] == "unbiased"
    assert any(type(m) is UnbiasedBatchNorm2d for m in load_model(tmp_path / "init.pt").modules())
    with pytest.raises(PgdatError, match="model.bn_var: unknown bn_var 'half'"):
        validate_config(load_config("default", ["model.bn_var=half"]))


def test_convert_bn_keeps_the_parameter_objects_and_their_flags():
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).double()
    net[1].weight.requires_grad_(False)  # a frozen BatchNorm scale
    net[1].eval()
    weight, bias, running_var = net[1].weight, net[1].bias, net[1].running_var
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    convert_bn(net, "unbiased")
    bn = net[1]
    assert type(bn) is UnbiasedBatchNorm2d and not bn.training
    assert bn.weight is weight and not bn.weight.requires_grad  # was a fresh trainable copy
    assert bn.bias is bias and bn.running_var is running_var and bn.weight.dtype == torch.float64
    assert any(p is bn.bias for p in opt.param_groups[0]["params"])  # an existing optimizer still updates it


@pytest.mark.parametrize("track", [True, False])
def test_empty_training_batch_behaves_like_pytorch(track):
    ref, ours = nn.BatchNorm2d(3, track_running_stats=track), UnbiasedBatchNorm2d(3, track_running_stats=track)
    ours.load_state_dict(ref.state_dict())
    empty = torch.randn(0, 3, 4, 4)
    assert ours(empty).shape == ref(empty).shape == (0, 3, 4, 4)  # used to raise "more than one value per channel"
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, key), getattr(ref, key))
