"""Re-parameterization: the inference (deploy) form of a trained network, computed once.

A layer whose inference form differs from its training form defines ``deploy_twin()``: it
returns a layer that computes the same eval-mode function in fewer or faster ops (its
BatchNorms folded into convolutions, constants precomputed, ...), or itself after swapping some
of its own sublayers. :func:`re_parameterize_layers` walks a network top-down and puts every
twin in place of its original, so a parent can fold a child into another child first (a layer
scale into the convolution before it) and the twins' own sublayers are visited too. Twins
define no ``deploy_twin``, so a second pass changes nothing.

The folding helpers below are exact algebra on eval-mode BatchNorms (running statistics) and
per-channel affine maps; they run in eager mode, on the current parameter values.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .depthwise import DepthwiseConv2D
from .pointwise import PointwiseConv2D

__all__ = ["re_parameterize_layers", "Scale", "batch_norm_affine", "conv2d_with", "fuse_conv_bn",
           "fold_into_conv1x1", "affine_as_depthwise_conv", "embed_kernel"]


def re_parameterize_layers(layer):
    """Replace, top-down, every sublayer of ``layer`` that has ``deploy_twin()`` by its twin
    (under ``no_grad``); each twin is marked, so a second pass leaves it alone. Returns ``layer``."""
    with paddle.no_grad():
        for name, child in list(layer.named_children()):
            twin = child
            if hasattr(child, "deploy_twin") and not getattr(child, "_is_deploy_twin", False):
                twin = child.deploy_twin()
                twin._is_deploy_twin = True
                if twin is not child:
                    setattr(layer, name, twin)
            re_parameterize_layers(twin)
    return layer


class Scale(nn.Layer):
    """Multiplication by a constant (an attention's ``1 / sqrt(d)``); the layer that owns it
    folds it into the projection before the product when re-parameterized."""

    def __init__(self, value):
        super().__init__()
        self.value = float(value)

    def forward(self, x):
        return x * self.value

    def extra_repr(self):
        return f"{self.value:.6g}"


def batch_norm_affine(bn):
    """An eval-mode BatchNorm as a per-channel ``(scale, shift)``: ``bn(x) = x * scale + shift``."""
    scale = paddle.rsqrt(bn._variance + bn._epsilon)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn._mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def conv2d_with(weight, bias, like=None, stride=1, padding=0, dilation=1, groups=1):
    """A new ``nn.Conv2D`` holding ``weight`` / ``bias`` (a :class:`DepthwiseConv2D` for a
    depthwise kernel, a :class:`PointwiseConv2D` for an ungrouped 1x1 kernel without stride or
    padding: both are faster in eager mode); geometry copied from the conv ``like`` when given
    (its padding mode and data format must be the defaults)."""
    if like is not None:
        if like._padding_mode != "zeros" or like._data_format != "NCHW":
            raise NotImplementedError("only zero-padded NCHW convolutions can be re-parameterized")
        stride, padding, dilation, groups = like._stride, like._padding, like._dilation, like._groups
    out_ch, in_per_group, kh, kw = weight.shape
    if groups > 1 and in_per_group == 1 and out_ch == groups:  # depthwise: the fast eager kernel
        conv = DepthwiseConv2D(out_ch, [kh, kw], stride=stride, padding=padding, dilation=dilation)
    elif _is_pointwise(weight, stride, padding, groups):
        conv = PointwiseConv2D(in_per_group, out_ch)
    else:
        conv = nn.Conv2D(in_per_group * groups, out_ch, [kh, kw], stride=stride, padding=padding,
                         dilation=dilation, groups=groups)
    conv.weight.set_value(weight)
    conv.bias.set_value(paddle.zeros([out_ch], weight.dtype) if bias is None else bias)
    return conv


def _is_pointwise(weight, stride, padding, groups):
    """An ungrouped 1x1 kernel at stride 1 without padding (the geometry of :class:`PointwiseConv2D`)."""
    if groups != 1 or tuple(weight.shape[2:]) != (1, 1) or isinstance(padding, str):
        return False
    pads = paddle.utils.flatten(list(padding)) if isinstance(padding, (list, tuple)) else [padding]
    return list(paddle.utils.convert_to_list(stride, 2, "stride")) == [1, 1] and not any(pads)


def fuse_conv_bn(conv, bn):
    """``bn(conv(x))`` as one convolution (BatchNorm after a conv folds exactly, any kernel)."""
    scale, shift = batch_norm_affine(bn)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return conv2d_with(conv.weight * scale.reshape([-1, 1, 1, 1]), bias, like=conv)


def fold_into_conv1x1(conv, before=None, after=()):
    """A 1x1 ``conv`` with the per-channel affine map ``before`` (a ``(scale, shift)`` on its
    input) and the maps ``after`` (applied to its output, in order) folded into its weights.
    Exact only for 1x1 kernels without padding: a map before a padded conv would also act on
    the padding."""
    padding = paddle.utils.convert_to_list(conv._padding, 2, "padding")
    if tuple(conv.weight.shape[2:]) != (1, 1) or conv._groups != 1 or any(padding):
        raise ValueError("fold_into_conv1x1 needs an ungrouped 1x1 convolution without padding")
    weight, bias = conv.weight, conv.bias
    if before is not None:
        scale, shift = before
        shifted = paddle.matmul(weight.squeeze([2, 3]), shift)
        weight = weight * scale.reshape([1, -1, 1, 1])
        bias = shifted if bias is None else bias + shifted
    for scale, shift in after:
        weight = weight * scale.reshape([-1, 1, 1, 1])
        bias = shift if bias is None else bias * scale + shift
    return conv2d_with(weight, bias, like=conv)


def affine_as_depthwise_conv(scale, shift):
    """``x * scale + shift`` per channel of an NCHW map, as a depthwise 1x1 conv: oneDNN runs it
    several times faster than a broadcast multiply-add or a BatchNorm, and fuses it with a
    following residual add."""
    channels = scale.shape[0]
    return conv2d_with(scale.reshape([channels, 1, 1, 1]), shift.reshape([channels]), groups=channels)


def embed_kernel(kernel, size, offset):
    """A 4-D ``kernel`` (``[..., k, k]``) placed at ``[offset:offset + k]`` on both axes of a zero
    ``[..., size, size]`` (kernels of several sizes merged into one)."""
    after = size - offset - kernel.shape[-1]
    return F.pad(kernel, [offset, after, offset, after])
