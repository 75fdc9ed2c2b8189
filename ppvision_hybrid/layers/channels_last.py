"""Channels-last operations that also run correctly in Paddle Inference with oneDNN.

Paddle 3.3.1's oneDNN kernels (chosen for every CPU predictor with oneDNN on) read the
``data_format`` of a few channels-last ops as if it were NCHW: ``pad3d`` with "NHWC" pads W
and C, ``batch_norm`` with "NLC"/"NHWC" expects one scale per token, ``conv2d`` with "NHWC"
takes H as the channel axis. The predictor then fails ("the shape of scale must equal to
[3136]", "input's channels is 1 ... data_format is NHWC", ``onednn_to_paddle_layout raises
dnnl::error``) or returns wrong shapes. No predictor pass can be deleted to avoid it (the
oneDNN kernel placement is all or nothing), so the exported graph must not contain these ops.

The helpers below keep the native channels-last op in dygraph (fast, and what training uses)
and trace an equivalent formulation under ``paddle.jit.to_static``. See also
:func:`ppvision_hybrid.layers.window.pad_nhwc`.
"""
import paddle
import paddle.nn.functional as F

__all__ = ["batch_norm_channels_last", "conv2d_channels_last", "conv2d_nhwc"]


def batch_norm_channels_last(bn, x):
    """``nn.BatchNorm2D``/``BatchNorm1D`` ``bn`` applied over the last axis of ``x``.

    Training (batch statistics) uses ``F.batch_norm`` with a channels-last ``data_format``;
    inference uses the running statistics as a per-channel affine map
    ``x * (w / sqrt(var + eps)) + (b - mean * w / sqrt(var + eps))``, which equals batch norm
    to float rounding and exports as two broadcast element-wise ops.
    """
    use_batch_stats = bn.training and not bn._use_global_stats
    if use_batch_stats:
        data_format = {2: "NC", 3: "NLC", 4: "NHWC", 5: "NDHWC"}[x.ndim]
        return F.batch_norm(x, bn._mean, bn._variance, weight=bn.weight, bias=bn.bias,
                            training=True, momentum=bn._momentum, epsilon=bn._epsilon,
                            data_format=data_format)
    scale = paddle.rsqrt(bn._variance + bn._epsilon)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn._mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return x * scale + shift


def conv2d_channels_last(conv, x):
    """Apply ``conv`` (an ``nn.Conv2D`` built with ``data_format="NHWC"``) to NHWC ``x``.

    Dygraph runs the native NHWC convolution; exported graphs run the same weights as an NCHW
    convolution between two transposes, which every Paddle Inference backend executes correctly.
    Safe to call from the ``forward`` of a ``Conv2D`` subclass (it never calls ``conv`` itself).
    """
    if conv._padding_mode != "zeros":
        raise NotImplementedError("conv2d_channels_last supports zero padding only")
    return conv2d_nhwc(x, conv.weight, conv.bias, conv._stride, conv._padding, conv._dilation,
                       conv._groups)


def conv2d_nhwc(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``F.conv2d(x, ..., data_format="NHWC")`` that exports correctly (see module doc)."""
    if paddle.in_dynamic_mode():
        return F.conv2d(x, weight, bias=bias, stride=stride, padding=padding, dilation=dilation,
                        groups=groups, data_format="NHWC")
    y = F.conv2d(x.transpose([0, 3, 1, 2]), weight, bias=bias, stride=stride, padding=padding,
                 dilation=dilation, groups=groups, data_format="NCHW")
    return y.transpose([0, 2, 3, 1])
