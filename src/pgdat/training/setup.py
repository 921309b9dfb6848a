"""Trainer set-up: device, determinism, per-epoch seeds, data and loader, weight averaging."""

from __future__ import annotations

import copy

import torch
from torch import nn

from pgdat.config.schema import Config, DataConfig
from pgdat.errors import PgdatError
from pgdat.seeding import stream_seed  # noqa: F401  (re-exported for the trainer)
from pgdat.training.distributed import DistInfo


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; a cuda device without CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise PgdatError(f"train.device '{name}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PgdatError("train.device is cuda but no CUDA GPU is visible; use train.device=cpu")
    return dev


def set_determinism(on: bool) -> None:
    """Deterministic kernels (and no cuDNN autotuning) when ``on``; cuDNN benchmark mode otherwise."""
    torch.use_deterministic_algorithms(on, warn_only=False)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


def prepare_data(cfg: DataConfig, seed: int = 0):
    """Load the configured dataset with its fixed validation split (and the ``n_train`` prefix of the rest), then
    apply ``cfg.transforms`` (seeded with the run's ``seed``)."""
    import dataclasses

    from pgdat.data import load_dataset
    from pgdat.data.transforms import apply_transforms

    bundle = load_dataset(cfg.name, cfg.root, download=cfg.download, val_size=cfg.val_size, val_seed=cfg.val_seed)
    if cfg.n_train < 0 or cfg.n_train > len(bundle.train):
        raise PgdatError(f"data.n_train must be in [0, {len(bundle.train)}] (got {cfg.n_train}); 0 uses all")
    if cfg.n_train:
        bundle = dataclasses.replace(bundle, train=bundle.train.subset(torch.arange(cfg.n_train)))
    return apply_transforms(bundle, cfg.transforms, seed)


def attach_extra(bundle, cfg: Config):
    """``(bundle, cfg)`` with ``data.extra`` opened (memory-mapped) into ``bundle.extra`` and resolved in ``cfg``
    (path, fraction, sha256, n_images), so the run's config and every checkpoint pin the exact extra file."""
    import dataclasses

    if not cfg.data.extra:
        return bundle, cfg
    if bundle.extra is None:
        from pgdat.data.extra import load_extra

        bundle = dataclasses.replace(bundle, extra=load_extra(cfg.data.extra, bundle.info.shape,
                                                               bundle.info.num_classes))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, extra=bundle.extra.describe()))
    return bundle, cfg


class EpochLoader:
    """Device-resident training batches whose order depends only on (seed, epoch): resumable at epoch boundaries.

    Under DDP every rank draws the same global permutation and takes its own slice of each global batch.
    """

    def __init__(self, data, cfg: Config, device: torch.device, dist: DistInfo) -> None:
        from pgdat.data import DeviceLoader

        if cfg.data.batch_size % dist.world:
            raise PgdatError(f"data.batch_size {cfg.data.batch_size} must be divisible by the {dist.world} processes")
        augment = data.info.default_augment if cfg.data.augment == "auto" else cfg.data.augment
        self.seed, self.dist = cfg.train.seed, dist
        self.loader = DeviceLoader(data.train, cfg.data.batch_size, device=device, shuffle=True,
                                   drop_last=cfg.data.drop_last, augment=augment, crop_padding=cfg.data.crop_padding,
                                   seed=cfg.train.seed, return_index=True, extra=data.extra)

    def epoch(self, e: int) -> _EpochBatches:
        """This epoch's (x, y, source index) batches for this rank, produced lazily (one batch in memory)."""
        self.loader.reseed(stream_seed(self.seed, e, 0, "data"))
        return _EpochBatches(self.loader, self.dist.rank, self.dist.world)


class _EpochBatches:
    """One epoch of a :class:`DeviceLoader`, sliced to this rank; has a length for progress bars."""

    def __init__(self, loader, rank: int, world: int) -> None:
        self.loader, self.rank, self.world = loader, rank, world

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        r, w = self.rank, self.world
        for x, y, i in self.loader:
            yield x[r::w], y[r::w], i[r::w]


def make_loader(data, cfg: Config, device: torch.device, dist: DistInfo) -> EpochLoader:
    return EpochLoader(data, cfg, device, dist)


class EMA:
    """Exponential moving average of the weights (buffers copied), evaluated next to the raw model."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise PgdatError(f"optim.ema must be in (0, 1) (got {decay}); 0 turns it off")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = list(self.module.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1 - self.decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
