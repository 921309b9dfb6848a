"""The BatchNorm variance estimator switch ``model.bn_var`` (reading R1 of the NTK-AT notes; not verified against
Li et al. 2023, whose "unbiased estimators in batch normalization" finding motivates it).

PyTorch's train-mode BatchNorm normalises a batch with the biased variance (divide by m = B*H*W per channel) but
accumulates ``running_var`` with the unbiased one (divide by m - 1), so train- and eval-mode statistics differ by
m / (m - 1). ``bn_var=unbiased`` swaps every ``nn.BatchNorm2d`` for :class:`UnbiasedBatchNorm2d`, which also
normalises train-mode batches with the unbiased variance; running statistics and eval mode are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.registry import Registry


class UnbiasedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose batch-statistics path normalises with the unbiased variance:
    y = (x - mean) / sqrt(var_{m-1} + eps) * weight + bias over x (B, C, H, W), per channel, m = B*H*W.

    Running statistics are updated exactly as ``nn.BatchNorm2d`` does (momentum, or the cumulative average when
    momentum is None; ``running_var`` from the unbiased variance) and only when training with
    ``track_running_stats``; eval mode with running statistics is ``nn.BatchNorm2d``'s. Computed in fp32 (fp64
    inputs stay fp64) without a fused kernel, so it is slower than the built-in layer.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if (not self.training and self.running_mean is not None) or x.numel() == 0:
            return super().forward(x)  # running statistics, or an empty batch (handled as nn.BatchNorm2d does)
        m = x.numel() // max(x.shape[1], 1)
        if m < 2:
            raise PgdatError(f"UnbiasedBatchNorm2d needs more than one value per channel in a training batch (input "
                             f"shape {tuple(x.shape)}); use a larger batch or model.bn_var=biased")
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        var, mean = torch.var_mean(xf, dim=(0, 2, 3), correction=1)  # (C,), (C,)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                self.running_var.lerp_(var.detach().to(self.running_var.dtype), factor)
        shape = (1, -1, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


# model.bn_var name -> the class that replaces every nn.BatchNorm2d (None: keep nn.BatchNorm2d)
BN_VARIANTS: Registry[Callable[..., nn.BatchNorm2d] | None] = Registry("bn_var")
BN_VARIANTS.register("biased")(None)
BN_VARIANTS.register("unbiased")(UnbiasedBatchNorm2d)


def _swap(parent: nn.Module, cls: Callable[..., nn.BatchNorm2d]) -> int:
    """Replace the plain ``nn.BatchNorm2d`` children of ``parent`` (recursively) by ``cls``; returns the count."""
    n = 0
    for name, child in parent.named_children():
        if type(child) is nn.BatchNorm2d:
            ref = child.running_mean if child.running_mean is not None else child.weight
            new = cls(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                      track_running_stats=child.track_running_stats,
                      device=ref.device if ref is not None else None, dtype=ref.dtype if ref is not None else None)
            # the same Parameter/buffer objects, not copies: requires_grad (a frozen layer) and optimizer references
            # survive the swap
            new._parameters.update(child._parameters)
            new._buffers.update(child._buffers)
            new.train(child.training)
            setattr(parent, name, new)
            n += 1
        else:
            n += _swap(child, cls)
    return n


def convert_bn(model: nn.Module, bn_var: str) -> nn.Module:
    """Apply ``model.bn_var`` to ``model`` in place (weights and statistics kept; state_dict keys unchanged) and
    return it. ``biased`` changes nothing; ``unbiased`` needs at least one ``nn.BatchNorm2d``."""
    cls = BN_VARIANTS.get(bn_var)
    if cls is None:
        return model
    if _swap(model, cls) == 0:
        raise PgdatError(f"model.bn_var={bn_var} but the model has no BatchNorm2d layer (e.g. small_cnn); use a "
                         "model with BatchNorm (preact_resnet18, resnet18, wide_resnet) or model.bn_var=biased")
    return model
