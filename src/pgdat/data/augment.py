"""Batched, per-image random crop (zero padding) and horizontal flip, done with one gather on the batch's device."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pgdat.errors import PgdatError

AUGMENTS = ("none", "crop", "flip", "crop_flip")


def crop_flip(x: torch.Tensor, dy: torch.Tensor | None, dx: torch.Tensor | None, flip: torch.Tensor | None,
              padding: int) -> torch.Tensor:
    """Shift-crop and mirror each image of a batch by its own offsets; no Python loop over images.

    ``x`` is (B, C, H, W) of any dtype. Image b is zero-padded by ``padding`` pixels on every side, the H x W window
    whose top-left corner is at (``dy[b]``, ``dx[b]``) of the padded image is cut out (int64 (B,), each in
    [0, 2 * padding]; None means centred, i.e. ``padding``), and it is mirrored left-right where ``flip[b]``
    (bool (B,); None means never). Returns a new (B, C, H, W) tensor of ``x``'s dtype.
    """
    b, c, h, w = x.shape
    dev = x.device
    if dy is None and dx is None:
        padding = 0
    padded = F.pad(x, (padding,) * 4) if padding else x
    top = dy if dy is not None else torch.full((b,), padding, dtype=torch.int64, device=dev)
    left = dx if dx is not None else torch.full((b,), padding, dtype=torch.int64, device=dev)
    rows = top[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = left[:, None] + torch.arange(w, device=dev)  # (B, W)
    if flip is not None:
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chans = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def draw_augment(n: int, augment: str, padding: int, generator: torch.Generator,
                 device: torch.device | str) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Random ``(dy, dx, flip)`` for ``n`` images under ``augment`` (see :data:`AUGMENTS`), drawn from ``generator``
    in a fixed order (dy, dx, flip) and returned on ``device``; unused parts are None."""
    gdev = generator.device

    def draw(high: int) -> torch.Tensor:
        return torch.randint(0, high, (n,), generator=generator, device=gdev).to(device, non_blocking=True)

    dy = dx = flip = None
    if augment in ("crop", "crop_flip"):
        dy, dx = draw(2 * padding + 1), draw(2 * padding + 1)
    if augment in ("flip", "crop_flip"):
        flip = draw(2).bool()
    return dy, dx, flip


def check_augment(augment: str, option: str = "augment") -> str:
    """``augment`` if it is one of :data:`AUGMENTS`, else a :class:`PgdatError` naming ``option``."""
    if augment not in AUGMENTS:
        raise PgdatError(f"{option} must be one of {', '.join(AUGMENTS)} (got {augment!r})")
    return augment


def random_augment(x: torch.Tensor, augment: str, padding: int = 4,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply ``augment`` ("none" | "crop" | "flip" | "crop_flip") to a batch (B, C, H, W) with fresh random
    per-image offsets and flips drawn from ``generator`` (CPU or on ``x.device``; default: the global CPU RNG)."""
    if check_augment(augment) == "none":
        return x
    g = generator if generator is not None else torch.default_generator
    return crop_flip(x, *draw_augment(len(x), augment, padding, g, x.device), padding=padding)
