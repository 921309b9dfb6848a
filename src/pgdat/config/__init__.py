"""Run configuration: frozen dataclasses, YAML recipes, dotted overrides."""

from pgdat.config.loader import apply_overrides, config_from_dict, config_to_dict, load_config, recipe_path
from pgdat.config.schema import (
    AttackConfig,
    Config,
    DataConfig,
    EvalConfig,
    MethodConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

__all__ = [
    "AttackConfig", "Config", "DataConfig", "EvalConfig", "MethodConfig", "ModelConfig", "OptimConfig", "TrainConfig",
    "apply_overrides", "config_from_dict", "config_to_dict", "load_config", "recipe_path",
]
