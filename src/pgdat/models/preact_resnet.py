"""Pre-activation ResNet-18 (He et al. 2016) as used by Wong et al. (2020) and Rice et al. (2020).

State_dict keys follow their reference code (conv1, layer1.0.bn1, ..., layer2.0.shortcut.0, bn, linear), and
initialisation is PyTorch's default, as in that code.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pgdat.models._checks import check_int
from pgdat.models.registry import MODELS
from pgdat.models.resnet import add_stages


class PreActBlock(nn.Module):
    """bn-relu-conv3x3 twice; 1x1 conv shortcut (on the pre-activated input) when the shape changes.

    (B, in_planes, H, W) -> (B, planes, H/stride, W/stride).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (self.shortcut(pre) if self.shortcut is not None else x)


class PreActResNet(nn.Module):
    """3x3 stem conv, four stages of PreActBlocks (width, 2w, 4w, 8w; strides 1, 2, 2, 2), bn-relu, global
    average pool, linear. (B, in_channels, H, W) -> (B, num_classes); 32x32 inputs end in a 4x4 map."""

    def __init__(self, num_blocks: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3,
                 width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        planes = add_stages(self, PreActBlock, num_blocks, width)
        self.num_stages = len(num_blocks)
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for i in range(self.num_stages):
            out = getattr(self, f"layer{i + 1}")(out)
        out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("preact_resnet18")
def preact_resnet18(num_classes: int, in_channels: int, *, width: int = 64) -> PreActResNet:
    """PreActResNet-18; ``width`` is the first stage's channel count (64 standard, ~11.2M parameters)."""
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels, check_int("width", width, 1))
