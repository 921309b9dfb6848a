"""Training methods, each a loss function registered by name in :data:`METHODS` with its facts
(:func:`register_method`). The import list below is the one list of the modules that register methods."""

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
from pgdat.methods.facts import Budget, MethodFacts, method_facts, passes_per_example, register_method

__all__ = ["METHODS", "Budget", "MethodFacts", "StepContext", "build_method", "craft", "method_facts",
           "passes_per_example", "register_method"]
