"""A test hook that kills the training process at an exact optimizer step, so kill/resume tests need no timing.

With ``PGDAT_TEST_KILL_AFTER_STEP=N`` in the environment, the Trainer sends SIGKILL to its own process right after
the optimizer step numbered N, counted from the start of the run across epochs (1-based: epoch ``e`` (0-based),
step ``i`` of the epoch is ``e * steps_per_epoch + i + 1``; a resumed run counts from its resumed epoch). The kill
comes after the step's callbacks and before the epoch's checkpoint, exactly where a real kill mid-epoch would land.
Unset (the normal case), nothing happens.
"""

from __future__ import annotations

import os
import signal

from pgdat.errors import PgdatError

KILL_ENV = "PGDAT_TEST_KILL_AFTER_STEP"


def kill_after_step() -> int | None:
    """The step after which to SIGKILL this process (from :data:`KILL_ENV`), or None when the variable is unset."""
    raw = os.environ.get(KILL_ENV)
    if raw is None or raw == "":
        return None
    try:
        step = int(raw)
    except ValueError:
        step = 0
    if step < 1:
        raise PgdatError(f"environment variable {KILL_ENV}={raw!r}: expected a step number >= 1, e.g. "
                         f"{KILL_ENV}=5 (or unset it)")
    return step


def kill_if_reached(step: int, kill_at: int | None) -> None:
    """SIGKILL this process when ``step`` (1-based, across epochs) is ``kill_at``."""
    if kill_at is not None and step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
