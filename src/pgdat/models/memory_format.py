"""When to run a model in channels_last (NHWC), the faster layout for convolutions on GPUs and oneDNN CPUs."""

from __future__ import annotations

import torch
from torch import nn

# On CPU (torch 2.13, oneDNN), backward through channels_last convolutions with very few channels corrupts the heap
# ("corrupted size vs. prev_size" / "free(): invalid next size"): measured for resnet18 / preact_resnet18 at width 2
# and 4, a 1x1 stride-2 convolution with 4 input channels; width 8 and up is fine.
MIN_CPU_CHANNELS = 8


def channels_last_ok(model: nn.Module, device: torch.device | str) -> bool:
    """Whether ``model`` can safely use channels_last on ``device``: False only on CPU when a convolution after the
    stem has fewer than ``MIN_CPU_CHANNELS`` input or output channels (the stem may read 1-3 image channels)."""
    if torch.device(device).type != "cpu":
        return True
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for i, conv in enumerate(convs):
        if conv.out_channels < MIN_CPU_CHANNELS or (i > 0 and conv.in_channels < MIN_CPU_CHANNELS):
            return False
    return True
