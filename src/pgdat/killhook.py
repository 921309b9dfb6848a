"""Test hooks that SIGKILL this process at an exact point (an optimizer step, an evaluated batch), so that kill/resume
tests need no timing: a real kill, at the place where a kill from outside would land, decided by a counter.

Each hook reads one environment variable holding a 1-based count (``PGDAT_TEST_KILL_AFTER_STEP`` for training steps,
``PGDAT_TEST_KILL_AFTER_EVAL_BATCH`` for attacked evaluation batches); unset (the normal case), nothing happens.
"""

from __future__ import annotations

import os
import signal

from pgdat.errors import PgdatError

EVAL_KILL_ENV = "PGDAT_TEST_KILL_AFTER_EVAL_BATCH"


def kill_at(env: str) -> int | None:
    """The count after which to SIGKILL this process, read from the environment variable ``env``, or None when it
    is unset or empty; anything but a whole number >= 1 is a PgdatError naming the variable."""
    raw = os.environ.get(env)
    if raw is None or raw == "":
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise PgdatError(f"environment variable {env}={raw!r}: expected a count >= 1, e.g. {env}=5 (or unset it)")
    return count


def kill_if_reached(count: int, at: int | None) -> None:
    """SIGKILL this process when ``count`` (1-based) is ``at``."""
    if at is not None and count == at:
        os.kill(os.getpid(), signal.SIGKILL)
