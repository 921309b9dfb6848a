"""Test hooks that SIGKILL this process at an exact point, so that kill/resume tests need no timing: a real kill,
where a kill from outside would land, decided by a counter read from the environment.

- ``PGDAT_TEST_KILL_AFTER_STEP=N``: the Trainer kills itself right after optimizer step N, counted from the start of
  the run across epochs (1-based: epoch ``e`` (0-based), step ``i`` of the epoch is ``e * steps_per_epoch + i + 1``;
  a resumed run counts from its resumed epoch), after the step's callbacks and before the epoch's checkpoint.
- ``PGDAT_TEST_KILL_AFTER_EVAL_BATCH=N``: an evaluation kills itself right after the N-th batch of an attack (counted
  within each attack of this process) was saved to its state file.

Unset (the normal case), nothing happens.
"""

from __future__ import annotations

import os
import signal

from pgdat.errors import PgdatError

KILL_ENV = "PGDAT_TEST_KILL_AFTER_STEP"
EVAL_KILL_ENV = "PGDAT_TEST_KILL_AFTER_EVAL_BATCH"
_UNITS = {KILL_ENV: "step number", EVAL_KILL_ENV: "batch number"}


def kill_at(env: str = KILL_ENV) -> int | None:
    """The count after which to SIGKILL this process, read from the environment variable ``env``, or None when it
    is unset or empty; anything but a whole number >= 1 is a PgdatError naming the variable and an example."""
    raw = os.environ.get(env)
    if raw is None or raw == "":
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise PgdatError(f"environment variable {env}={raw!r}: expected a {_UNITS.get(env, 'count')} >= 1, e.g. "
                         f"{env}=5 (or unset it)")
    return count


def kill_if_reached(count: int, at: int | None) -> None:
    """SIGKILL this process when ``count`` (1-based) is ``at``."""
    if at is not None and count == at:
        os.kill(os.getpid(), signal.SIGKILL)
