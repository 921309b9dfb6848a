"""The one explicit list of callbacks: every ``@CALLBACKS.register`` class is in it, and importing it alone fills
the registry."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pgdat
from pgdat.training.callback_list import CALLBACKS, REGISTERED, build_callbacks
from pgdat.training.monitors import GradNormMonitor

DECORATED = re.compile(r"@CALLBACKS\.register\([^)]*\)\s*\nclass (\w+)")


def test_every_decorated_callback_is_in_the_list_and_registered():
    src = Path(pgdat.__file__).parent
    decorated = {name for path in src.rglob("*.py") for name in DECORATED.findall(path.read_text(encoding="utf-8"))}
    assert decorated == {cls.__name__ for cls in REGISTERED}  # a new callback class must be added to the list
    assert set(REGISTERED) <= set(CALLBACKS.values())


def test_importing_the_list_alone_fills_the_registry():
    code = "from pgdat.training.callback_list import CALLBACKS; print(' '.join(sorted(CALLBACKS)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert set(out) == set(CALLBACKS) and "grad_norm" in out and "spectrum_monitor" in out


def test_build_callbacks_from_specs():
    (cb,) = build_callbacks([{"name": "grad_norm"}])
    assert isinstance(cb, GradNormMonitor)
