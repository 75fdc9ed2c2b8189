from .checkpoint import _load_checkpoint, load_checkpoint

__all__ = ["_load_checkpoint", "load_checkpoint"]
