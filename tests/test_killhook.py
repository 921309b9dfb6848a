"""The kill/resume test hook: PGDAT_TEST_KILL_AFTER_STEP is parsed once, and a bad value fails naming it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from pgdat.errors import PgdatError
from pgdat.killhook import KILL_ENV, kill_at, kill_if_reached


def test_unset_or_empty_means_no_kill(monkeypatch):
    monkeypatch.delenv(KILL_ENV, raising=False)
    assert kill_at() is None
    monkeypatch.setenv(KILL_ENV, "")
    assert kill_at() is None
    kill_if_reached(3, None)  # returns: nothing to kill


@pytest.mark.parametrize("raw", ["0", "-2", "2.5", "five"])
def test_bad_value_names_the_variable_the_value_and_an_example(monkeypatch, raw):
    monkeypatch.setenv(KILL_ENV, raw)
    with pytest.raises(PgdatError) as info:
        kill_at()
    assert str(info.value) == (f"environment variable {KILL_ENV}={raw!r}: expected a step number >= 1, e.g. "
                               f"{KILL_ENV}=5 (or unset it)")


def test_kills_its_own_process_at_exactly_that_step():
    code = ("from pgdat.killhook import kill_at, kill_if_reached\n"
            "n = kill_at()\n"
            "for step in range(1, 10):\n"
            "    print(step, flush=True)\n"
            "    kill_if_reached(step, n)\n")
    env = {**os.environ, KILL_ENV: "4"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and proc.stdout.split() == ["1", "2", "3", "4"]
