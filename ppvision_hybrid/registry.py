"""Model registry: ``create_model``, ``list_models`` and per-variant metadata.

Every family file under ``ppvision_hybrid/models/`` registers its PaddleClas-style
factories (``MixFormer_B4(pretrained=False, class_num=1000, **kwargs)``) once with
:func:`register_model`. Everything else in the project (tests, counters, export, hub,
dense-prediction adapters) discovers models through this module, so a new variant is
picked up by being registered.
"""
import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

__all__ = [
    "ModelSpec", "register_model", "create_model", "list_models", "get_model_spec",
    "list_families", "smallest_per_family", "register_converter", "convert_checkpoint",
]


@dataclass
class ModelSpec:
    """What the project knows about one registered variant.

    ``reference`` holds the numbers a test checks the implementation against:
    ``params`` (trainable, absolute), ``macs`` (multiply-accumulates at
    ``reference_input``), their relative tolerances, and where they come from.
    """
    name: str
    family: str
    factory: Callable
    paper: str = ""
    reference: Dict = field(default_factory=dict)
    default_input: tuple = (3, 224, 224)
    # Export/test helpers: the smallest input side the model accepts.
    min_input: int = 32


_MODELS: Dict[str, ModelSpec] = {}
_CONVERTERS: Dict[str, Callable] = {}


def register_model(family: str, paper: str = "", reference: Optional[Dict] = None,
                   default_input=(3, 224, 224), min_input: int = 32):
    """Decorator registering a factory under its own ``__name__``.

    ``reference`` example: ``dict(params=5.099e6, macs=0.402e9, params_tol=0.01,
    macs_tol=0.01, source="official code, measured")``.
    """
    def deco(fn):
        name = fn.__name__
        if name in _MODELS:
            raise ValueError(f"model '{name}' is registered twice")
        _MODELS[name] = ModelSpec(name=name, family=family, factory=fn, paper=paper,
                                  reference=dict(reference or {}),
                                  default_input=tuple(default_input), min_input=min_input)
        return fn
    return deco


def _ensure_models_imported():
    # Importing the package registers every family (models/__init__ imports each file).
    from . import models  # noqa: F401


def list_models(pattern: str = "*", family: Optional[str] = None) -> List[str]:
    """Sorted registered names matching a shell-style ``pattern`` (case-insensitive)."""
    _ensure_models_imported()
    pat = pattern.lower()
    return sorted(n for n, s in _MODELS.items()
                  if fnmatch.fnmatch(n.lower(), pat) and (family is None or s.family == family))


def list_families() -> List[str]:
    _ensure_models_imported()
    return sorted({s.family for s in _MODELS.values()})


def smallest_per_family() -> List[str]:
    """Sorted names of each family's variant with the fewest reference parameters (what the
    quick checks and benchmarks run; variants without a reference count sort last)."""
    _ensure_models_imported()
    best = {}
    for name in sorted(_MODELS):
        spec = _MODELS[name]
        params = spec.reference.get("params", float("inf"))
        if spec.family not in best or params < best[spec.family][1]:
            best[spec.family] = (name, params)
    return sorted(name for name, _ in best.values())


def get_model_spec(name: str) -> ModelSpec:
    _ensure_models_imported()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"Unknown model name '{name}'.{hint} "
                       f"Call ppvision_hybrid.list_models() to see all {len(_MODELS)} registered models.")
    return _MODELS[name]


def create_model(name: str, pretrained=False, class_num: int = 1000, **kwargs):
    """Build a registered model by name (``pretrained``: False, True or a local path)."""
    spec = get_model_spec(name)
    return spec.factory(pretrained=pretrained, class_num=class_num, **kwargs)


def register_converter(family: str):
    """Register ``fn(model_name, official_state_dict) -> paddle state dict`` for a family."""
    def deco(fn):
        _CONVERTERS[family] = fn
        return fn
    return deco


def convert_checkpoint(model_name: str, state_dict):
    """Convert the authors' checkpoint (mapping key -> array) into our state dict."""
    spec = get_model_spec(model_name)
    if spec.family not in _CONVERTERS:
        raise ValueError(f"No checkpoint converter for family '{spec.family}' "
                         f"(families with one: {sorted(_CONVERTERS)})")
    return _CONVERTERS[spec.family](model_name, state_dict)
