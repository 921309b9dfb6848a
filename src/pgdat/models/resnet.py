"""CIFAR-style ResNet-18 (He et al. 2016; the layout of kuangliu/pytorch-cifar used across AT papers).

3x3 stem conv with no max-pool. State_dict keys follow that code (conv1, bn1, layer1.0.conv1, ...,
layer2.0.shortcut.0/1, linear); initialisation is PyTorch's default, as in that code.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from pgdat.models._checks import check_int
from pgdat.models.registry import MODELS


class BasicBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn plus shortcut (1x1 conv + bn when the shape changes), then relu.

    (B, in_planes, H, W) -> (B, planes, H/stride, W/stride).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def add_stages(net: nn.Module, block: Callable[[int, int, int], nn.Module], num_blocks: tuple[int, ...],
               width: int) -> int:
    """Add ``layer1..layerN`` to ``net``: stage i has ``num_blocks[i]`` blocks of width * 2**i channels, the first
    with stride 2 (stride 1 in stage 1). Returns the channel count of the last stage."""
    planes = width
    for i, n in enumerate(num_blocks):
        out_planes = width * 2**i
        blocks = []
        for stride in [1 if i == 0 else 2] + [1] * (n - 1):
            blocks.append(block(planes, out_planes, stride))
            planes = out_planes
        net.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
    return planes


class ResNet(nn.Module):
    """conv3x3-bn-relu stem, four stages of BasicBlocks (width, 2w, 4w, 8w; strides 1, 2, 2, 2), global average
    pool, linear. (B, in_channels, H, W) -> (B, num_classes)."""

    def __init__(self, num_blocks: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3,
                 width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        planes = add_stages(self, BasicBlock, num_blocks, width)
        self.num_stages = len(num_blocks)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            out = getattr(self, f"layer{i + 1}")(out)
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("resnet18")
def resnet18(num_classes: int, in_channels: int, *, width: int = 64) -> ResNet:
    """ResNet-18; ``width`` is the first stage's channel count (64 standard, ~11.2M parameters)."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels, check_int("width", width, 1))
