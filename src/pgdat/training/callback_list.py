"""The one list of callbacks. Each callback registers itself with ``@CALLBACKS.register(name)`` where it is
defined; this module imports every registered class by name, below, so that importing it completes
:data:`CALLBACKS` (no module-name strings, no file scans). A new callback class is added to this list
(``tests/training/test_callback_list.py`` fails until it is)."""

from __future__ import annotations

from typing import Any

from pgdat.errors import PgdatError
from pgdat.training.attack_switch import AttackSwitch
from pgdat.training.bn_recal_callback import BNRecalibrate
from pgdat.training.callbacks import CALLBACKS, Callback
from pgdat.training.co_monitor import COMonitor
from pgdat.training.monitors import GradientNoiseMonitor, GradNormMonitor, TrainSetEval
from pgdat.training.ntk_snapshot import NTKSnapshot
from pgdat.training.spectrum_monitor import SpectrumMonitor
from pgdat.training.tracking import TensorBoardLogger, WandbLogger

# every class registered in CALLBACKS (built-in callbacks that are always attached, e.g. MetricsLogger, are not)
REGISTERED = (AttackSwitch, BNRecalibrate, COMonitor, GradientNoiseMonitor, GradNormMonitor, NTKSnapshot,
              SpectrumMonitor, TensorBoardLogger, TrainSetEval, WandbLogger)

__all__ = ["CALLBACKS", "REGISTERED", "build_callbacks"]


def build_callbacks(specs: list[dict[str, Any]]) -> list[Callback]:
    """Instantiate ``[{name: grad_norm, ...params}]`` entries (from ``train.callbacks`` or a method's defaults)."""
    out = []
    for spec in specs:
        params = {k: v for k, v in spec.items() if k != "name"}
        try:
            out.append(CALLBACKS.get(spec.get("name", "?"))(**params))
        except TypeError as e:
            raise PgdatError(f"callback '{spec.get('name')}': {e}") from None
    return out
