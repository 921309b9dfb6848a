"""Input normalisation as the first layer of every model, so attacks and eps live in [0,1] pixel space."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from pgdat.errors import PgdatError
from pgdat.registry import Registry


def _as_floats(name: str, values: Sequence[float]) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise PgdatError(f"normalisation {name} must be a list of numbers (one per channel), got {values!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise PgdatError(f"normalisation {name} must be a non-empty list of finite numbers, got {values!r}")
    return out


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; x (B, C, H, W) -> (B, C, H, W).

    mean/std are persistent buffers of shape (1, C, 1, 1), so they are saved in the state_dict.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        m, s = _as_floats("mean", mean), _as_floats("std", std)
        if len(m) != len(s):
            raise PgdatError(f"normalisation mean and std need one value per channel each, got {len(m)} and {len(s)}")
        if any(v <= 0 for v in s):
            raise PgdatError(f"normalisation std must be > 0 for every channel, got {s}")
        self.register_buffer("mean", torch.tensor(m, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(s, dtype=torch.float32).view(1, -1, 1, 1))

    @classmethod
    def identity(cls, channels: int) -> Normalize:
        """Mean 0, std 1 for ``channels`` channels: a no-op that keeps the state_dict layout."""
        return cls([0.0] * channels, [1.0] * channels)

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # without this check a (B, 1, H, W) batch broadcasts against a 3-channel mean into (B, 3, H, W) and a
        # colour model silently accepts grayscale images (shape metadata only: no host sync)
        if x.dim() < 3 or x.shape[-3] != self.channels:
            raise PgdatError(f"the model takes images (B, {self.channels}, H, W) in [0,1] but got input of shape "
                             f"{tuple(x.shape)}; use data with {self.channels} channel(s) (the dataset the model was "
                             "trained on)")
        if not x.is_floating_point():  # e.g. raw uint8 pixels 0-255 would be normalised as if they were in [0,1]
            raise PgdatError(f"the model takes floating-point images in [0,1] but got dtype {x.dtype}; convert "
                             "uint8 pixels with pgdat.data.bundle.as_unit_float (x / 255)")
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class NormalizedModel(nn.Module):
    """``net(normalize(x))``: images (B, C, H, W) in [0,1] -> logits (B, num_classes).

    mean/std None gives identity normalisation for ``in_channels`` channels (then ``in_channels`` is required);
    when given, their length must match ``in_channels`` if that is passed too.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 *, in_channels: int | None = None) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise PgdatError("give both normalisation mean and std, or neither (identity normalisation)")
        if mean is None:
            if in_channels is None:
                raise PgdatError("NormalizedModel needs in_channels when mean/std are None")
            self.normalize = Normalize.identity(in_channels)
        else:
            self.normalize = Normalize(mean, std)
            if in_channels is not None and self.normalize.channels != in_channels:
                raise PgdatError(f"normalisation mean/std have {self.normalize.channels} values but the model takes "
                                 f"{in_channels} input channels; give one value per channel")
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


# ----------------------------------------------------------------------------------- the model.input_norm switch
Stats = tuple[list[float] | None, list[float] | None]
InputNorm = Callable[[Sequence[float], Sequence[float], Sequence[float], Sequence[float]], Stats]
# model.input_norm name -> fn(data_mean, data_std, custom_mean, custom_std) -> (mean, std) of the Normalize layer,
# (None, None) meaning identity. Reading R4 of the NTK-AT notes (Li et al. 2023's data-normalisation finding; the
# paper's exact setting is not verified): whatever the choice, normalisation stays inside the model, so eps is in
# pixel units and only the network's input scale (and with it the NTK's scale) changes.
INPUT_NORMS: Registry[InputNorm] = Registry("input normalisation")


@INPUT_NORMS.register("dataset")
def _dataset_norm(data_mean: Sequence[float], data_std: Sequence[float], mean: Sequence[float],
                  std: Sequence[float]) -> Stats:
    """The training split's per-channel mean/std (the default)."""
    return list(data_mean), list(data_std)


@INPUT_NORMS.register("none")
def _no_norm(data_mean: Sequence[float], data_std: Sequence[float], mean: Sequence[float],
             std: Sequence[float]) -> Stats:
    """Identity: the network sees raw [0,1] pixels."""
    return None, None


@INPUT_NORMS.register("custom")
def _custom_norm(data_mean: Sequence[float], data_std: Sequence[float], mean: Sequence[float],
                 std: Sequence[float]) -> Stats:
    """``model.norm_mean`` / ``model.norm_std``, one value per input channel."""
    if not mean or not std:
        raise PgdatError("model.input_norm=custom needs model.norm_mean and model.norm_std (one value per channel, "
                         "e.g. model.norm_mean=[0.5,0.5,0.5] model.norm_std=[0.25,0.25,0.25])")
    if len(mean) != len(data_mean) or len(std) != len(data_mean):
        raise PgdatError(f"model.norm_mean/norm_std need one value per input channel ({len(data_mean)}), got "
                         f"{len(mean)} and {len(std)}")
    return _as_floats("mean", mean), _as_floats("std", std)


def resolve_input_norm(name: str, data_mean: Sequence[float], data_std: Sequence[float],
                       mean: Sequence[float] = (), std: Sequence[float] = ()) -> Stats:
    """(mean, std) for the model's :class:`Normalize` layer under ``model.input_norm=name`` (see
    :data:`INPUT_NORMS`); ``data_mean``/``data_std`` are the dataset's per-channel statistics in pixel units."""
    if name != "custom" and (len(mean) or len(std)):
        raise PgdatError(f"model.norm_mean/norm_std are used only with model.input_norm=custom (got input_norm="
                         f"'{name}'); set model.input_norm=custom or drop them")
    return INPUT_NORMS.get(name)(data_mean, data_std, mean, std)
