"""ppvision-hybrid: hybrid local/global vision backbones for PaddlePaddle.

MixFormer, MAFormer, DualFormer, TransXNet and Focal Transformer as plain ``paddle.nn.Layer``
models, with a registry (``create_model``, ``list_models``), counters (``model_info``),
checkpoint conversion (``convert_checkpoint``) and weight loading.

The package is lazy (PEP 562): ``import ppvision_hybrid`` imports neither paddle nor the model
code, so the model-free modules (``predict``, ``preprocess``, ``inference``, ``timing``,
``cli_errors``) serve a deployment on their own. The public names below import their module on
first use, and every registry query registers all families first.
"""
__version__ = "0.1.0"

# Paddle 2.6 wheels segfault on later zlib use unless zlib is imported before paddle.
import zlib  # noqa: E402,F401

from .cli_errors import quiet_third_party_noise  # noqa: E402
quiet_third_party_noise()  # before paddle's import warns about ccache
from .cpu_math import use_mkl_avx2_on_amd  # noqa: E402
use_mkl_avx2_on_amd()  # before the first MKL call: Paddle's MKL is slow on AMD CPUs otherwise
from .cpu_memory import keep_freed_memory  # noqa: E402
keep_freed_memory()  # freed activations stay in the heap: no page faults on every call

#: public name -> the submodule defining it
_LAZY = {"create_model": "registry", "list_models": "registry", "list_families": "registry",
         "get_model_spec": "registry", "convert_checkpoint": "registry", "model_info": "flops",
         "load_pretrained": "weights", "load_state_dict_checked": "weights"}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    import importlib
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    try:  # a submodule: ``ppvision_hybrid.models``, ``ppvision_hybrid.layers``, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
