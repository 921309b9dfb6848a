"""Label smoothing of the training cross-entropy (``optim.label_smoothing``), applied in one place.

A method computes its CE against the labels with :func:`label_ce`; the trainer wraps each step's loss in
:func:`label_smoothing`, which sets the value and records whether the method applied it, so a run whose method has no
label CE through :func:`label_ce` fails at its first step instead of silently training without smoothing. Attacks
keep their own, unsmoothed losses (Wang et al. 2023 smooth only TRADES's natural term).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Smoothing:
    """The active smoothing ``value`` in [0, 1) and whether a :func:`label_ce` call used it (``applied``)."""

    value: float = 0.0
    applied: bool = False


_ACTIVE: ContextVar[Smoothing | None] = ContextVar("pgdat_label_smoothing", default=None)


@contextmanager
def label_smoothing(value: float) -> Iterator[Smoothing]:
    """Within the block, :func:`label_ce` smooths the targets by ``value`` (0 = plain CE)."""
    state = Smoothing(float(value))
    token = _ACTIVE.set(state)
    try:
        yield state
    finally:
        _ACTIVE.reset(token)


def label_ce(logits: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
    """Cross-entropy of logits (B, K) against labels y (B,) in float32, with the active label smoothing (targets
    ``(1 - s) onehot + s / K``); ``kwargs`` go to ``F.cross_entropy`` (e.g. ``reduction``, ``weight``)."""
    state = _ACTIVE.get()
    s = state.value if state is not None else 0.0
    if state is not None:
        state.applied = True
    return F.cross_entropy(logits.float(), y, label_smoothing=s, **kwargs)
