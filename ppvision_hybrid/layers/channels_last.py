"""Channels-last operations that also run correctly in Paddle Inference with oneDNN.

Paddle 3.3.1's oneDNN kernels (chosen for every CPU predictor with oneDNN on) read the
``data_format`` of a few channels-last ops as if it were NCHW: ``pad3d`` with "NHWC" pads W
and C, ``batch_norm`` with "NLC"/"NHWC" expects one scale per token, ``conv2d`` with "NHWC"
takes H as the channel axis. The predictor then fails ("the shape of scale must equal to
[3136]", "input's channels is 1 ... data_format is NHWC", ``onednn_to_paddle_layout raises
dnnl::error``) or returns wrong shapes. No predictor pass can be deleted to avoid it (the
oneDNN kernel placement is all or nothing), so the exported graph must not contain these ops.

The helper below runs BatchNorm over the last axis as batch statistics in training and as a
per-channel affine map in eval mode. See also :func:`ppvision_hybrid.layers.window.pad_nhwc`.
"""
import paddle.nn.functional as F

from .reparam import batch_norm_affine

__all__ = ["batch_norm_channels_last"]


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
    scale, shift = batch_norm_affine(bn)
    return x * scale + shift
