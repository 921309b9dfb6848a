"""Training methods, each a loss function registered by name in :data:`METHODS`."""

from pgdat.methods import (  # noqa: F401  (register themselves)
    awp,
    free_at,
    grad_align,
    long_tail,
    mart,
    pgd_at,
    single_step,
    standard,
    switch,
    temporal_ensembling,
    trades,
)
from pgdat.methods.base import METHODS, StepContext, build_method, craft

__all__ = ["METHODS", "StepContext", "build_method", "craft"]
