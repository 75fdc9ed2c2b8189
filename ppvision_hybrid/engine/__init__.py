"""PaddleClas-compatible classification engine (train / eval / infer / export)."""
from .config import ConfigError, get_config, load_config, apply_overrides, validate_config
from .engine import Engine, ModelEMA, build_model_from_config

__all__ = ["Engine", "ModelEMA", "ConfigError", "get_config", "load_config", "apply_overrides",
           "validate_config", "build_model_from_config"]
