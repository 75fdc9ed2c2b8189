"""Backbone adapters for PaddleDetection (``ppdet``) and PaddleSeg (``seg``).

This package is the only place in ppvision_hybrid that imports the toolkits, and it does so only
when a submodule is imported. Use :func:`setup_det` / :func:`setup_seg` (our tools/ scripts and
``python -m ppvision_hybrid.dense`` do): they probe the imported toolkit and apply the compat
fixes it needs, then register the backbones — into whichever ppdet / paddleseg is imported.
"""

__all__ = ["setup_det", "setup_seg", "describe"]

_SETUP = set()


def setup_det():
    """Apply the ppdet fixes the probes call for, register ``PVHBackbone`` with ppdet and let
    ``Trainer.load_weights`` find weights in either save layout; returns the class."""
    from .. import compat
    compat.apply_fixes("ppdet")
    from .ppdet import PVHBackbone, weights_layout_patches
    if "ppdet" not in _SETUP:
        for patch in weights_layout_patches():
            patch.apply()
        _SETUP.add("ppdet")
    return PVHBackbone


def setup_seg():
    """Apply the paddleseg fixes the probes call for and add ``PVHBackbone`` to
    ``manager.BACKBONES``; returns the class."""
    from .. import compat
    compat.apply_fixes("paddleseg")
    from .seg import PVHBackbone
    _SETUP.add("paddleseg")
    return PVHBackbone


def describe(toolkit):
    """One line: which copy of the toolkit was set up and what the probes decided."""
    import os
    import sys
    from .. import compat
    module = sys.modules.get(toolkit)
    where = os.path.dirname(getattr(module, "__file__", "") or "?")
    results = {name: state for (name, kit), state in compat.probe_results().items() if kit == toolkit}
    patched = [name for name, state in results.items() if state == "patched"]
    fixes = ", ".join(patched) if patched else f"none needed ({len(results)} probes passed)"
    return f"PVHBackbone registered in {toolkit} from {where}; compat fixes: {fixes}"
