"""Plug our factories into a PaddleClas installation.

PaddleClas resolves ``Arch.name`` with ``getattr(ppcls.arch, name)``, so an external package
joins its engine by placing its factories in that namespace. The pip wheel installs the repo
as ``paddleclas`` (module ``paddleclas.ppcls.arch``); a source checkout has ``ppcls.arch``.
``python -m ppvision_hybrid.paddleclas <PaddleClas>/tools/train.py -c ...`` calls
:func:`register_into_paddleclas` and then runs the PaddleClas script (see :mod:`.paddleclas`).
"""
import importlib

from . import registry

__all__ = ["register_into_paddleclas"]

_CANDIDATES = ("ppcls.arch", "paddleclas.ppcls.arch")


def register_into_paddleclas(module=None, overwrite=False):
    """Set every registered factory as an attribute of PaddleClas's ``arch`` module.

    Returns the list of names added. Raises ImportError when no PaddleClas is importable, and
    ValueError when a name already exists there (unless ``overwrite``).
    """
    if module is None:
        errors = []
        for cand in _CANDIDATES:
            try:
                module = importlib.import_module(cand)
                break
            except ImportError as e:
                errors.append(f"{cand}: {e}")
        else:
            raise ImportError("PaddleClas is not importable (tried " + "; ".join(errors) + ")")
    added = []
    for name in registry.list_models():
        if hasattr(module, name) and not overwrite and getattr(module, name) is not registry.get_model_spec(name).factory:
            raise ValueError(f"{module.__name__}.{name} already exists; pass overwrite=True to replace it")
        setattr(module, name, registry.get_model_spec(name).factory)
        added.append(name)
    return added
