"""Wide ResNet (Zagoruyko & Komodakis 2016) in the form used by TRADES and MART (WRN-34-10, WRN-28-10).

State_dict keys follow the TRADES code (conv1, block1.layer.0.bn1, ..., block2.layer.0.convShortcut, bn1, fc),
minus its unused ``sub_block1`` (drop those keys, or load with ``strict=False``, to use TRADES checkpoints).
Initialisation as there: convs Kaiming-normal (fan_out, relu), BN weight 1 / bias 0, linear bias 0.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pgdat.errors import PgdatError
from pgdat.models._checks import check_fraction, check_int
from pgdat.models.registry import MODELS


class WideBasicBlock(nn.Module):
    """bn-relu-conv3x3, bn-relu-(dropout)-conv3x3, plus shortcut; a 1x1 conv on the pre-activated input when the
    channel count changes. (B, in_planes, H, W) -> (B, out_planes, H/stride, W/stride)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.convShortcut: nn.Module | None = None
        if in_planes != out_planes:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        return out + (self.convShortcut(pre) if self.convShortcut is not None else x)


class WideBlockGroup(nn.Module):
    """``n`` WideBasicBlocks, the first one changing channels/stride (kept as ``.layer`` for TRADES keys)."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, dropout)
            for i in range(n)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-k: 3x3 stem conv (16), three groups of (depth-4)/6 blocks (16k, 32k, 64k; strides 1, 2, 2),
    bn-relu, global average pool, linear. (B, in_channels, H, W) -> (B, num_classes)."""

    def __init__(self, depth: int = 34, widen_factor: int = 10, num_classes: int = 10, in_channels: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise PgdatError(f"wide_resnet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 34, 40, ...), got {depth}")
        n = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, stride=1, padding=1, bias=False)
        self.block1 = WideBlockGroup(n, channels[0], channels[1], 1, dropout)
        self.block2 = WideBlockGroup(n, channels[1], channels[2], 2, dropout)
        self.block3 = WideBlockGroup(n, channels[2], channels[3], 2, dropout)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.fc = nn.Linear(channels[3], num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference initialisation (see the module docstring)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("wide_resnet")
def wide_resnet(num_classes: int, in_channels: int, *, depth: int = 34, widen_factor: int = 10,
                dropout: float = 0.0) -> WideResNet:
    """WRN-``depth``-``widen_factor`` (depth = 6n+4); defaults give TRADES' WRN-34-10."""
    return WideResNet(check_int("depth", depth, 1), check_int("widen_factor", widen_factor, 1), num_classes,
                      in_channels, check_fraction("dropout", dropout))


@MODELS.register("wrn28_10")
def wrn28_10(num_classes: int, in_channels: int, *, dropout: float = 0.0) -> WideResNet:
    """WRN-28-10 (~36.5M parameters)."""
    return wide_resnet(num_classes, in_channels, depth=28, widen_factor=10, dropout=dropout)


@MODELS.register("wrn34_10")
def wrn34_10(num_classes: int, in_channels: int, *, dropout: float = 0.0) -> WideResNet:
    """WRN-34-10 (~46.2M parameters), the TRADES/MART benchmark model."""
    return wide_resnet(num_classes, in_channels, depth=34, widen_factor=10, dropout=dropout)
