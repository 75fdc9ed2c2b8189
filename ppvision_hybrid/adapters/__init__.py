"""Backbone adapters for PaddleDetection (``ppdet``) and PaddleSeg (``seg``).

This package is the only place in ppvision_hybrid that imports the toolkits, and it does so only
when a submodule is imported. Use :func:`setup_det` / :func:`setup_seg` (or the tools/ scripts):
they apply our compatibility fixes first, then register the backbones.
"""

__all__ = ["setup_det", "setup_seg"]


def setup_det():
    """Apply the ppdet fixes and register ``PVHBackbone`` with ppdet; returns the class."""
    from .. import compat
    compat.apply_fixes("ppdet")
    from .ppdet import PVHBackbone
    return PVHBackbone


def setup_seg():
    """Apply the paddleseg fixes and add ``PVHBackbone`` to ``manager.BACKBONES``."""
    from .. import compat
    compat.apply_fixes("paddleseg")
    from .seg import PVHBackbone
    return PVHBackbone
