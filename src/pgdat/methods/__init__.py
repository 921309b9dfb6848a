"""Training methods, each a loss function registered by name in :data:`METHODS`."""

from pgdat.methods import awp, mart, pgd_at, standard, temporal_ensembling, trades  # noqa: F401  (register themselves)
from pgdat.methods.base import METHODS, StepContext, build_method, craft

__all__ = ["METHODS", "StepContext", "build_method", "craft"]
