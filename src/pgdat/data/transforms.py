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
from pgdat.errors import PgdatError
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
        valid = [p for p in inspect.signature(fn).parameters if p not in ("bundle", "seed")]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise PgdatError(f"data transform '{spec['name']}' has no option {', '.join(unknown)}; valid: "
                             f"{', '.join(valid)}")
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
