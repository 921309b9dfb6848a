"""The trainer: one loop, methods as losses, callbacks observing the run."""

from pathlib import Path

import yaml

from pgdat.config import Config, config_to_dict
from pgdat.training.callbacks import Callback, ConsoleLogger, CurvePlotter, MetricsLogger
from pgdat.training.trainer import Trainer


def write_config(cfg: Config, path: Path) -> None:
    """Save the fully resolved config as YAML (atomically)."""
    from pgdat.checkpoint import atomic_write_bytes

    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


__all__ = ["Callback", "ConsoleLogger", "CurvePlotter", "MetricsLogger", "Trainer", "write_config"]
