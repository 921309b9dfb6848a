"""A device-resident, seeded, resumable batch iterator over a :class:`~pgdat.data.bundle.Split`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from pgdat.data.augment import check_augment, crop_flip, draw_augment
from pgdat.data.bundle import Split, as_unit_float
from pgdat.data.extra import ExtraSet, draw_extra, extra_batches, extra_per_batch
from pgdat.errors import PgdatError


def device_generator(device: torch.device) -> torch.Generator:
    """A generator on ``device`` when the backend supports one there, else a CPU generator (draws are then moved)."""
    try:
        g = torch.Generator(device=device)
        torch.randperm(2, generator=g, device=device)
        return g
    except (RuntimeError, TypeError, NotImplementedError):
        return torch.Generator()


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise PgdatError(f"{name} must be an integer {span} (got {value!r})")
    return value


class DeviceLoader:
    """Batches of a split kept whole on ``device`` as uint8; each epoch is shuffled and augmented on the device.

    Iterating yields ``(x, y)`` or, with ``return_index``, ``(x, y, idx)``: ``x`` float32 (B, C, H, W) in [0, 1],
    ``y`` int64 (B,), ``idx`` int64 (B,) the examples' source indices (``split.index``). All of an epoch's
    randomness (permutation, crop offsets, flips) is drawn from one seeded generator when its iteration starts, so
    the order depends only on ``seed`` and the number of epochs started, not on how many batches were consumed;
    :meth:`state_dict` taken between epochs and restored with :meth:`load_state_dict` reproduces the next epochs.
    Iteration does no host synchronisation.

    With ``extra`` (:class:`~pgdat.data.extra.ExtraSet`), each batch holds ``round(batch_size * extra.fraction)``
    images drawn from the extra set (after the real ones, augmented alike, source index ``1 + max(split.index)``
    + row) and real images for the rest; an epoch is one pass over the real split (Wang et al. 2023).
    """

    def __init__(self, split: Split, batch_size: int, *, device: torch.device | str = "cpu", shuffle: bool = True,
                 drop_last: bool = False, augment: str = "none", crop_padding: int = 4, seed: int = 0,
                 return_index: bool = False, extra: ExtraSet | None = None) -> None:
        n, _, h, w = split.x.shape
        if n == 0:
            raise PgdatError("DeviceLoader got an empty split; it needs at least one example")
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.extra = extra
        self.n_extra = extra_per_batch(batch_size, extra.fraction) if extra is not None else 0  # per full batch
        self.real_batch = batch_size - self.n_extra  # real images per batch
        if drop_last and self.real_batch > n:
            raise PgdatError(f"batch_size must be in [1, {n + self.n_extra}] with drop_last=True (the split has {n} "
                             f"examples, {self.n_extra} extra per batch); got {batch_size}, which would give no batch")
        self.augment = check_augment(augment)
        self.crop_padding = _check_int("crop_padding", crop_padding, 0, min(h, w))
        self.device = torch.device(device)
        self.shuffle, self.drop_last, self.return_index = shuffle, drop_last, return_index
        self.x = split.x.to(self.device)
        self.y = split.y.to(self.device)
        self.index = split.index.to(self.device)
        self.extra_offset = int(split.index.max()) + 1 if extra is not None else 0
        self.generator = device_generator(self.device)
        self.seed = _check_int("seed", seed, 0)
        self.generator.manual_seed(seed)
        self.epoch = 0  # epochs started so far

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.real_batch if self.drop_last else -(-n // self.real_batch)

    def reseed(self, seed: int) -> None:
        """Restart the random stream from ``seed``: the next epoch's order then depends only on ``seed``."""
        self.seed = _check_int("seed", seed, 0)
        self.generator.manual_seed(seed)

    def _draw_epoch(self) -> tuple[torch.Tensor | None, ...]:
        """This epoch's permutation (None without shuffle) and augmentation draws, all on the device."""
        n, g = len(self.y), self.generator
        perm = torch.randperm(n, generator=g, device=g.device).to(self.device) if self.shuffle else None
        return (perm, *draw_augment(n, self.augment, self.crop_padding, g, self.device))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        plan = self._draw_epoch()
        mixed = self._draw_extra() if self.extra is not None else None
        self.epoch += 1
        return self._batches(*plan, mixed)

    def _draw_extra(self) -> tuple[Iterator[tuple[torch.Tensor, ...]], tuple[torch.Tensor | None, ...]]:
        """This epoch's extra images per batch and their augmentation draws (device generator, after the real
        split's)."""
        n, bs = len(self.y), self.real_batch
        reals = [min(bs, n - i * bs) for i in range(len(self))]
        sizes = [self.n_extra if r == bs else round(r * self.n_extra / bs) for r in reals]
        # host RNG seeded from the device generator's state: a function of (seed, epochs drawn since), restored by
        # load_state_dict and reset by reseed, so resumed and uninterrupted runs draw the same extra images
        state = self.generator.get_state().cpu().numpy().tobytes()  # once per epoch
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(state).digest()[:8], "little"))
        picks = draw_extra(len(self.extra), sizes, rng)
        aug = draw_augment(sum(sizes), self.augment, self.crop_padding, self.generator, self.device)
        bounds = np.cumsum([0, *sizes]).tolist()
        return extra_batches(self.extra, picks, self.device, self.extra_offset), (aug, bounds)

    def _batches(self, perm: torch.Tensor | None, dy: torch.Tensor | None, dx: torch.Tensor | None,
                 flip: torch.Tensor | None, mixed: tuple | None = None) -> Iterator[tuple[torch.Tensor, ...]]:
        bs = self.real_batch
        for i in range(len(self)):
            sl = slice(i * bs, (i + 1) * bs)
            take = perm[sl] if perm is not None else sl
            x, y, idx, aug = self.x[take], self.y[take], self.index[take], (_part(dy, sl), _part(dx, sl),
                                                                              _part(flip, sl))
            if mixed is not None:  # extra images appended before augmenting: one crop/flip over the whole batch
                x, y, idx, aug = _mix(x, y, idx, aug, next(mixed[0]), *mixed[1], i)
            if self.augment != "none":
                x = crop_flip(x, *aug, self.crop_padding)
            x = as_unit_float(x)
            yield (x, y, idx) if self.return_index else (x, y)

    def state_dict(self) -> dict[str, Any]:
        """Seed, epochs started and the generator state (CPU uint8 tensor): enough to replay the next epochs."""
        return {"seed": self.seed, "epoch": self.epoch, "generator": self.generator.get_state(),
                "generator_device": self.generator.device.type}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (from a loader on the same kind of device)."""
        missing = {"seed", "epoch", "generator", "generator_device"} - set(state)
        if missing:
            raise PgdatError(f"DeviceLoader state lacks {', '.join(sorted(missing))}; pass a DeviceLoader.state_dict()")
        if state["generator_device"] != self.generator.device.type:
            raise PgdatError(f"DeviceLoader state comes from a {state['generator_device']} generator but this loader "
                             f"draws on {self.generator.device.type}; resume on the same kind of device")
        self.generator.set_state(state["generator"].detach().to("cpu", torch.uint8))
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])


def _part(t: torch.Tensor | None, sl: slice) -> torch.Tensor | None:
    return t[sl] if t is not None else None


def _mix(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, aug: tuple[torch.Tensor | None, ...],
         extra: tuple[torch.Tensor, ...], extra_aug: tuple[torch.Tensor | None, ...], bounds: list[int], i: int,
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, ...]]:
    """Append batch ``i``'s extra images, labels, indices and augmentation draws (its slice of ``extra_aug``)."""
    xe, ye, ie = extra
    xe = xe if xe.dtype == x.dtype else as_unit_float(xe)  # float real images (a transform's): pixel units
    sl = slice(bounds[i], bounds[i + 1])
    aug = tuple(None if a is None else torch.cat([a, e[sl]]) for a, e in zip(aug, extra_aug, strict=True))
    return torch.cat([x, xe]), torch.cat([y, ye]), torch.cat([idx, ie]), aug
