"""DCT low-pass wrapper (co_features ``DCTLowPasser``): keep only the low-frequency 2-D DCT coefficients of the
(normalised) input before the network, so the filter acts on both the data and the perturbation.

``mode``: ``block`` keeps coefficients with row < b and col < b (the b x b block the paper describes); ``rows`` keeps
rows < b over all columns, which is what the repo's mask indexing does on batched 4-D input (a vertical-only low-pass).
``enabled`` lives on the filter module itself; :func:`set_lowpass` switches every filter inside a model (the repo's
flag on the outer wrapper never reached the filter).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pgdat.data.injected import dct_matrix
from pgdat.errors import PgdatError
from pgdat.models.registry import MODELS

MODES = ("block", "rows")


class DCTLowPass(nn.Module):
    """x (B, C, H, W) -> D_h^T (M * (D_h x D_w^T)) D_w with M the low-frequency mask; identity when disabled."""

    def __init__(self, bandwidth: int = 16, mode: str = "block", enabled: bool = True) -> None:
        super().__init__()
        if mode not in MODES:
            raise PgdatError(f"lowpass mode must be one of {', '.join(MODES)} (got '{mode}')")
        if int(bandwidth) != bandwidth or bandwidth < 1:
            raise PgdatError(f"lowpass bandwidth must be an integer >= 1 (got {bandwidth})")
        self.bandwidth, self.mode, self.enabled = int(bandwidth), mode, enabled
        self._cache: dict[tuple[int, int, str, torch.dtype], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _mats(self, h: int, w: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (h, w, str(x.device), x.dtype)
        if key not in self._cache:
            dh, dw = dct_matrix(h).to(x.device, x.dtype), dct_matrix(w).to(x.device, x.dtype)
            rows = torch.arange(h, device=x.device).view(-1, 1) < self.bandwidth
            cols = torch.arange(w, device=x.device).view(1, -1) < (self.bandwidth if self.mode == "block" else w)
            self._cache[key] = (dh, dw, (rows & cols).to(x.dtype))
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        dh, dw, mask = self._mats(x.shape[-2], x.shape[-1], x)
        coeffs = dh @ x @ dw.T  # (B, C, H, W) 2-D DCT-II (orthonormal)
        return dh.T @ (coeffs * mask) @ dw

    def extra_repr(self) -> str:
        return f"bandwidth={self.bandwidth}, mode={self.mode}, enabled={self.enabled}"


def set_lowpass(model: nn.Module, enabled: bool) -> int:
    """Switch every :class:`DCTLowPass` inside ``model`` on or off; returns how many filters were set."""
    filters = [m for m in model.modules() if isinstance(m, DCTLowPass)]
    for m in filters:
        m.enabled = enabled
    return len(filters)


@MODELS.register("lowpass")
def lowpass(num_classes: int, in_channels: int, *, base: str = "small_cnn", bandwidth: int = 16,
            mode: str = "block", enabled: bool = True, base_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """``base`` (a registered model name, options ``base_kwargs``) behind a DCT low-pass filter of ``bandwidth``
    coefficients per axis (the paper: b = 16 on 32x32 CIFAR-10 with PreActResNet-18)."""
    if base == "lowpass":
        raise PgdatError("lowpass base must be another model name, e.g. small_cnn or preact_resnet18")
    net = MODELS.get(base)(num_classes, in_channels, **(base_kwargs or {}))
    return nn.Sequential(DCTLowPass(bandwidth, mode, enabled), net)
