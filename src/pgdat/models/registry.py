"""The model registry and :func:`create_model`, the only way a model name becomes a network.

A builder is registered as ``builder(num_classes, in_channels, *, option=default, ...)``; its keyword-only
parameters are the architecture's options.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from pgdat.errors import first_option, unknown_options_error
from pgdat.models._checks import check_int
from pgdat.models.batchnorm import convert_bn
from pgdat.models.normalize import NormalizedModel
from pgdat.registry import Registry

ModelBuilder = Callable[..., nn.Module]

MODELS: Registry[ModelBuilder] = Registry("model")


def model_names() -> list[str]:
    """All registered model names (aliases and presets included), sorted."""
    return sorted(MODELS)


def model_options(name: str) -> dict[str, Any]:
    """The options ``name`` accepts as keyword arguments, with their defaults."""
    params = inspect.signature(MODELS.get(name)).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_model_options(name: str, kwargs: dict[str, Any]) -> None:
    """Raise a :class:`PgdatError` naming the options of ``kwargs`` that model ``name`` does not have, the valid ones
    and an example."""
    valid = model_options(name)
    unknown = set(kwargs) - set(valid)
    if unknown:
        example = first_option({k: valid[k] for k in sorted(valid)})
        raise unknown_options_error(f"model '{name}'", unknown, sorted(valid), f"model.kwargs={{{example}}}")


def create_model(
    name: str,
    num_classes: int = 10,
    *,
    in_channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    bn_var: str = "biased",
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name`` wrapped as ``net(normalize(x))``: images (B, in_channels, H, W) in [0,1] -> logits.

    mean/std: per-channel normalisation inside the model (None: identity). bn_var: BatchNorm2d variance estimator
    for train-mode batches, biased (PyTorch) | unbiased (:mod:`pgdat.models.batchnorm`). kwargs: architecture
    options (see :func:`model_options`), e.g. ``width=16`` or ``depth=28, widen_factor=10``.
    """
    builder = MODELS.get(name)
    check_model_options(name, kwargs)
    num_classes = check_int("num_classes", num_classes, 2)
    in_channels = check_int("in_channels", in_channels, 1)
    net = convert_bn(builder(num_classes, in_channels, **kwargs), bn_var)
    return NormalizedModel(net, mean, std, in_channels=in_channels)
