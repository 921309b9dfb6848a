"""The small MNIST CNN of Madry et al./advertorch (``LeNet5``): two conv-pool stages and two linear layers.

Attribute names match advertorch's ``LeNet5``, so its state_dicts (conv1, conv2, linear1, linear2) load as-is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pgdat.models._checks import check_int
from pgdat.models.registry import MODELS


class SmallCNN(nn.Module):
    """(B, in_channels, S, S) -> (B, num_classes) for input size S (28 for MNIST, 32 for CIFAR)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        side = input_size // 2 // 2  # after two floor-rounding 2x2 max-pools
        self.linear1 = nn.Linear(64 * side * side, 200)
        self.linear2 = nn.Linear(200, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(F.relu(self.conv1(x)), 2)
        out = F.max_pool2d(F.relu(self.conv2(out)), 2)
        out = F.relu(self.linear1(out.flatten(1)))  # (B, 64 * side * side), channel-major like advertorch
        return self.linear2(out)


@MODELS.register("small_cnn")
def small_cnn(num_classes: int, in_channels: int, *, input_size: int = 28) -> SmallCNN:
    """Small CNN for ``input_size`` x ``input_size`` images (default 28, MNIST)."""
    input_size = check_int("input_size", input_size, 4)
    return SmallCNN(num_classes, in_channels, input_size)
