"""ppvision-hybrid: hybrid local/global vision backbones for PaddlePaddle.

MixFormer, MAFormer, DualFormer, TransXNet and Focal Transformer as plain ``paddle.nn.Layer``
models, with a registry (``create_model``, ``list_models``), counters (``model_info``),
checkpoint conversion (``convert_checkpoint``) and weight loading.
"""
__version__ = "0.1.0"

# Paddle 2.6 wheels segfault on later zlib use unless zlib is imported before paddle.
import zlib  # noqa: E402,F401

from .cli_errors import quiet_third_party_noise  # noqa: E402
quiet_third_party_noise()  # before paddle's import warns about ccache

from .registry import create_model, list_models, list_families, get_model_spec, convert_checkpoint  # noqa: E402
from .flops import model_info  # noqa: E402
from .weights import load_pretrained, load_state_dict_checked  # noqa: E402
from . import models  # noqa: E402,F401  (registers every family)

__all__ = ["create_model", "list_models", "list_families", "get_model_spec", "convert_checkpoint",
           "model_info", "load_pretrained", "load_state_dict_checked", "__version__"]
