"""Dataset transforms applied to a loaded :class:`DataBundle` (configured as ``data.transforms``).

A transform is ``fn(bundle, *, seed: int, **params) -> DataBundle`` registered in :data:`TRANSFORMS`; a config entry
is a mapping ``{name: label_noise, rate: 0.2}``. ``seed`` is the run's seed, so transforms are reproducible.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch

from pgdat.data.bundle import DataBundle, Split
from pgdat.errors import PgdatError, first_option, unknown_options_error
from pgdat.registry import Registry

Transform = Callable[..., DataBundle]
TRANSFORMS: Registry[Transform] = Registry("data transform")


def apply_transforms(bundle: DataBundle, specs: Iterable[dict[str, Any]], seed: int) -> DataBundle:
    """Apply ``specs`` in order; unknown names or options raise a :class:`PgdatError` listing the valid ones."""
    for spec in specs:
        if not isinstance(spec, dict) or "name" not in spec:
            raise PgdatError(f"each data.transforms entry needs a name, e.g. {{name: label_noise, rate: 0.2}} "
                             f"(got {spec!r})")
        params = {k: v for k, v in spec.items() if k != "name"}
        fn = TRANSFORMS.get(spec["name"])
        sig = inspect.signature(fn).parameters
        valid = [p for p in sig if p not in ("bundle", "seed")]
        unknown = set(params) - set(valid)
        if unknown:
            option = first_option({k: sig[k].default for k in valid if sig[k].default is not sig[k].empty})
            raise unknown_options_error(f"data transform '{spec['name']}'", unknown, valid,
                                        f"data.transforms=[{{name: {spec['name']}{', ' * bool(option)}{option}}}]")
        bundle = fn(bundle, seed=seed, **params)
    return bundle


def noisy_labels(y: torch.Tensor, num_classes: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Symmetric label noise: each label is replaced, with probability ``rate``, by a uniformly drawn class
    (which may equal the true one, as in Zhang et al.'s random-label protocol: rate 1 gives fully random labels)."""
    flip = torch.rand(len(y), generator=generator) < rate
    random = torch.randint(0, num_classes, (len(y),), generator=generator)
    return torch.where(flip, random, y)


@TRANSFORMS.register("label_noise")
def label_noise(bundle: DataBundle, *, seed: int, rate: float = 1.0, noise_seed: int | None = None) -> DataBundle:
    """Symmetric label noise with ``rate`` in [0, 1] on the training split (validation and test keep true labels);
    the true labels stay available as ``train.y_true``. ``noise_seed`` defaults to the run's seed."""
    if not 0.0 <= rate <= 1.0:
        raise PgdatError(f"label_noise rate must be in [0, 1] (got {rate}); 1 gives random labels")
    g = torch.Generator().manual_seed(seed if noise_seed is None else noise_seed)
    train = bundle.train
    y_true = train.y_true if train.y_true is not None else train.y
    y = noisy_labels(y_true.cpu(), bundle.info.num_classes, rate, g).to(y_true.device)
    return dataclasses.replace(bundle, train=Split(train.x, y, train.index, y_true))


def long_tail_counts(n_max: int, num_classes: int, ratio: float, profile: str = "exp") -> list[int]:
    """Per-class counts of a long-tailed subset (LDAM-DRW): ``exp``: n_c = floor(n_max * r^(c/(C-1))) with
    r = 1/ratio; ``step``: n_max for the first half of the classes, floor(n_max / ratio) for the rest."""
    r = 1.0 / ratio
    if profile == "exp":
        return [int(n_max * r ** (c / (num_classes - 1))) for c in range(num_classes)]
    if profile == "step":
        return [n_max if c < num_classes // 2 else int(n_max * r) for c in range(num_classes)]
    raise PgdatError(f"long_tail profile must be exp or step (got '{profile}')")


@TRANSFORMS.register("long_tail")
def long_tail(bundle: DataBundle, *, seed: int, ratio: float = 50.0, profile: str = "exp", n_max: int | None = None,
              order_seed: int = 0) -> DataBundle:
    """Subsample the training split to a long-tailed class profile with imbalance ratio ``ratio`` (n_0 / n_{C-1});
    class 0 is the head. As LDAM-DRW / REAT: one numpy RNG seeded with ``order_seed`` shuffles each class's indices in
    class order and the first n_c are kept. Validation (drawn before) and test splits stay balanced."""
    import numpy as np

    if ratio < 1:
        raise PgdatError(f"long_tail ratio must be >= 1 (got {ratio}); e.g. 10, 50, 100")
    train, c = bundle.train, bundle.info.num_classes
    y = train.y.cpu().numpy()
    have = np.bincount(y, minlength=c)
    n_max = int(have.min()) if n_max is None else n_max
    counts = long_tail_counts(n_max, c, ratio, profile)
    if any(n > h for n, h in zip(counts, have, strict=True)) or min(counts) < 1:
        raise PgdatError(f"long_tail needs counts {counts} but classes have {have.tolist()}; lower n_max or ratio")
    rng = np.random.RandomState(order_seed)
    keep = []
    for cls, n in enumerate(counts):
        idx = np.where(y == cls)[0]
        rng.shuffle(idx)
        keep.append(idx[:n])
    positions = torch.from_numpy(np.sort(np.concatenate(keep))).long()
    return dataclasses.replace(bundle, train=train.subset(positions))
