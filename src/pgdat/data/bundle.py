"""The in-memory dataset types: :class:`DatasetInfo`, :class:`Split`, :class:`DataBundle` and the readers' output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from pgdat.data.extra import ExtraSet
from pgdat.errors import PgdatError

Augment = Literal["crop_flip", "crop", "flip", "none"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a training recipe need to know about a dataset, available without loading it.

    ``shape`` is one image as (C, H, W); ``mean``/``std`` are per-channel statistics of the training images in
    [0, 1] pixel units; ``default_augment`` is the standard training augmentation (random crops use 4 pixels of
    zero padding). ``in_unit_box`` is False when a transform may put pixels outside [0, 1] (unclipped injected
    features); ``attack.box=auto`` then drops the [0,1] clamp from training and evaluation attacks.
    """

    name: str
    num_classes: int
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    default_augment: Augment = "none"
    in_unit_box: bool = True


def as_unit_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32: uint8 (0..255) are divided by 255; float images (already pixel units) are kept."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


@dataclass(frozen=True)
class Split:
    """One split held as tensors: images ``x`` (N, C, H, W), uint8 (0..255) or, after a transform such as feature
    injection, float32 in pixel units; labels ``y`` int64 (N,); ``index`` int64 (N,), the position of each example in
    the source file's train or test set (``arange(N)`` when not given); ``y_true`` int64 (N,), the original labels
    when a transform changed ``y`` (label noise), else None."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor = field(default=None)  # type: ignore[assignment]
    y_true: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.index is None:
            object.__setattr__(self, "index", torch.arange(len(self.y), dtype=torch.int64, device=self.y.device))
        if self.x.dtype not in (torch.uint8, torch.float32) or self.x.dim() != 4:
            raise PgdatError(f"Split.x must be a uint8 or float32 tensor (N, C, H, W); got {self.x.dtype} "
                             f"{tuple(self.x.shape)}")
        for name in ("y", "index", "y_true"):
            t = getattr(self, name)
            if t is None:
                continue
            if t.dtype != torch.int64 or t.dim() != 1 or len(t) != len(self.x):
                raise PgdatError(f"Split.{name} must be an int64 tensor ({len(self.x)},); "
                                 f"got {t.dtype} {tuple(t.shape)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, positions: torch.Tensor) -> Split:
        """The examples at ``positions`` (int64, positions in this split), keeping their source indices."""
        y_true = self.y_true[positions] if self.y_true is not None else None
        return Split(self.x[positions], self.y[positions], self.index[positions], y_true)


@dataclass(frozen=True)
class DataBundle:
    """A loaded dataset: its info, the training split, the held-out validation split (None when
    ``val_size=0``), the test split and, with ``data.extra``, the memory-mapped extra training images
    (a :class:`~pgdat.data.extra.ExtraSet`, mixed into training batches only)."""

    info: DatasetInfo
    train: Split
    val: Split | None
    test: Split
    extra: ExtraSet | None = None


@dataclass(frozen=True)
class RawData:
    """What a reader returns: the source train and test sets (uint8 NCHW images, int64 labels), optionally the
    class names stored in the files and the examples' source indices."""

    train: Split
    test: Split
    classes: tuple[str, ...] | None = None
