"""GELU (Hendrycks & Gimpel 2016, exact erf form), the one dispatch point for its fast CPU kernel.

:func:`gelu` is ``F.gelu(x)`` (``approximate=False``); in eager mode on the CPU for float32
tensors it runs the vectorised kernel of :mod:`ppvision_hybrid.layers.fast_ops` (forward and
backward), elsewhere -- saved graphs, GPU, other dtypes, mixed precision, no compiler -- the
standard op. :class:`GELU` is an ``nn.GELU`` that calls it (no parameters).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .fast_ops import autocast_enabled, eager_execution, load_fast_ops, run_fast_op

__all__ = ["GELU", "gelu"]

_OP = "ppvh_gelu"


def gelu(x, approximate=False):
    """``F.gelu(x, approximate)``, on the fast kernel where it applies (exact form only)."""
    if (approximate or not eager_execution() or x.dtype != paddle.float32 or not x.place.is_cpu_place()
            or autocast_enabled() or _OP not in (load_fast_ops() or ())):
        return F.gelu(x, approximate=approximate)
    return run_fast_op(_OP, x)[0]


class GELU(nn.GELU):
    """``nn.GELU`` whose eager CPU forward and backward run :func:`gelu`'s fast kernel."""

    def forward(self, x):
        return gelu(x, self._approximate)
