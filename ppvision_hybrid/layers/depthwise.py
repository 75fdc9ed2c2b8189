"""Depthwise convolution (one filter per channel), the one dispatch point for its fast CPU kernel.

:func:`depthwise_conv2d` is ``F.conv2d(x, weight, bias, stride, padding, groups=C)``. In eager
mode on the CPU, for float32 NCHW inputs with dilation 1, it runs the vectorised kernel of
:mod:`ppvision_hybrid.layers.fast_ops` (forward and backward; docs/benchmarks.md "Session 9").
Everywhere else -- ``paddle.jit.to_static``
and exported graphs, GPU tensors, other dtypes, automatic mixed precision, or no compiler -- it
is the standard ``F.conv2d``, so saved models contain only standard ops.

:class:`DepthwiseConv2D` is an ``nn.Conv2D`` with ``groups = in = out channels``: the same
parameter names and shapes (``weight [C, 1, kh, kw]``, ``bias [C]``), so state dicts,
checkpoints, initialisers and FLOP counters see an ordinary depthwise ``nn.Conv2D``.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .fast_ops import autocast_enabled, eager_execution, load_fast_ops, run_fast_op

__all__ = ["DepthwiseConv2D", "depthwise_conv2d", "fast_depthwise_applies", "per_sample_depthwise_conv2d"]

_OP = "ppvh_depthwise_conv2d"
_STANDARD_CONV2D = F.conv2d
_zero_biases = {}  # channels -> a zero [C] tensor: the op always takes a bias (never modified)


def _pair(value):
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None


def fast_depthwise_applies(x, weight, stride=1, padding=0, dilation=1, data_format="NCHW"):
    """Whether :func:`depthwise_conv2d` would run the fast kernel for these arguments. Not while
    ``F.conv2d`` is patched (a MAC counter such as ``ppvision_hybrid.flops`` wraps it): such a
    wrapper then sees every depthwise convolution."""
    if not eager_execution() or data_format != "NCHW" or _pair(dilation) != (1, 1):
        return False
    if F.conv2d is not _STANDARD_CONV2D:
        return False
    if _OP not in (load_fast_ops() or ()):
        return False
    stride, padding = _pair(stride), _pair(padding)
    if stride is None or padding is None or min(stride) < 1 or min(padding) < 0:
        return False
    if x.ndim != 4 or weight.ndim != 4 or weight.shape[1] != 1 or weight.shape[0] != x.shape[1]:
        return False
    if x.dtype != paddle.float32 or weight.dtype != paddle.float32 or not x.place.is_cpu_place():
        return False
    return not autocast_enabled()


def depthwise_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, data_format="NCHW"):
    """Depthwise 2-D convolution of NCHW ``x`` [N, C, H, W] with ``weight`` [C, 1, kh, kw]
    (``groups = C``) and optional ``bias`` [C]; zero padding, ``stride`` / ``padding`` an int or
    a (h, w) pair. Equal to ``F.conv2d(..., groups=C)`` up to float summation order."""
    if not fast_depthwise_applies(x, weight, stride, padding, dilation, data_format):
        return F.conv2d(x, weight, bias=bias, stride=stride, padding=padding, dilation=dilation,
                        groups=weight.shape[0], data_format=data_format)
    return _fast_depthwise(x, weight, bias, stride, padding)


def _fast_depthwise(x, weight, bias, stride, padding):
    """The fast kernel, for arguments :func:`fast_depthwise_applies` accepted."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    has_bias = bias is not None
    if not has_bias:  # its gradient is then not used
        channels = weight.shape[0]
        if channels not in _zero_biases:
            _zero_biases[channels] = paddle.zeros([channels], dtype="float32")
        bias = _zero_biases[channels]
    return run_fast_op(_OP, x, weight, bias, sh, sw, ph, pw, has_bias)[0]


def per_sample_depthwise_conv2d(x, kernels, saved_graph_form):
    """A "same" depthwise KxK convolution of NCHW ``x`` [B, C, H, W] with its own kernel and bias
    for every sample and channel, given as ``kernels`` [B*C, K+1, K+1]: the kernel at
    ``[:K, :K]``, the bias at ``[K, K]`` (zeros elsewhere; TransXNet's IDConv, Sec. III-A-1).

    Where the fast kernel applies (eager CPU float32) it is one depthwise conv over the batch
    folded into channels, ``x`` as [1, B*C, H, W] (the authors' grouped form). Everywhere else --
    saved graphs above all, whose runtimes need static conv kernels and a dynamic batch -- it is
    ``saved_graph_form(x, kernels)``, the model's formulation of the same function from standard
    ops."""
    if not eager_execution():  # the graph form; the eager branch is kept out of graph conversion
        return saved_graph_form(x, kernels)
    return _per_sample_eager(x, kernels, saved_graph_form)


def _per_sample_eager(x, kernels, saved_graph_form):
    if x.ndim == 4 and kernels.ndim == 3:
        b, c, k = x.shape[0], x.shape[1], kernels.shape[-1] - 1
        folded, weight = x.reshape([1, b * c, 0, 0]), kernels[:, :k, :k].unsqueeze(1)
        if fast_depthwise_applies(folded, weight, 1, k // 2):
            return _fast_depthwise(folded, weight, kernels[:, k, k], 1, k // 2).reshape([b, c, 0, 0])
    return saved_graph_form(x, kernels)


class DepthwiseConv2D(nn.Conv2D):
    """``nn.Conv2D(channels, channels, kernel_size, groups=channels)`` whose eager CPU forward
    and backward run :func:`depthwise_conv2d`'s fast kernel (same parameters and state dict)."""

    def __init__(self, channels, kernel_size, stride=1, padding=0, dilation=1, padding_mode="zeros",
                 weight_attr=None, bias_attr=None, data_format="NCHW"):
        super().__init__(channels, channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=channels, padding_mode=padding_mode, weight_attr=weight_attr,
                         bias_attr=bias_attr, data_format=data_format)

    def forward(self, x):
        # Everywhere the fast kernel does not apply (saved graphs included) this is exactly
        # nn.Conv2D's forward, so exported programs are those of a plain depthwise nn.Conv2D.
        if (self._padding_mode != "zeros" or self._padding_algorithm != "EXPLICIT"
                or not fast_depthwise_applies(x, self.weight, self._stride, self._updated_padding, self._dilation,
                                              self._data_format)):
            return super().forward(x)
        return _fast_depthwise(x, self.weight, self.bias, self._stride, self._updated_padding)
