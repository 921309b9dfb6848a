"""A third party's model file, as ``pgdat eval --model-file`` takes it: plain PyTorch, no pgdat import.

The LeNet5 of advertorch's MNIST tutorial (state_dict keys conv1, conv2, linear1, linear2; inputs in [0,1], no
normalisation), written from the architecture described in ``../shared/data/README.md``.
"""

import torch
from torch import nn


class LeNet5(nn.Module):
    """(B, 1, 28, 28) in [0,1] -> (B, 10) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.linear1 = nn.Linear(64 * 7 * 7, 200)
        self.linear2 = nn.Linear(200, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = nn.functional.max_pool2d(torch.relu(self.conv2(h)), 2)
        return self.linear2(torch.relu(self.linear1(h.flatten(1))))


def build() -> nn.Module:
    return LeNet5()
