"""A 1x1 convolution with a bias whose eager forward adds the bias cheaply."""
import paddle.nn as nn
import paddle.nn.functional as F

from .fast_ops import eager_execution

__all__ = ["PointwiseConv2D"]


class PointwiseConv2D(nn.Conv2D):
    """``nn.Conv2D(in_ch, out_ch, 1)`` with a bias (same parameters and state dict). In eager
    mode the bias is added on a ``[N, C, H*W]`` view of the bias-free convolution: Paddle's eager
    conv adds it as a 4-D broadcast, several times slower for the same sums (docs/benchmarks.md,
    "Session 11 / issue 25 phase 2b"). Graphs (``paddle.jit.to_static``, AST or SOT) keep the
    conv's own bias, which oneDNN fuses."""

    def __init__(self, in_ch, out_ch):
        super().__init__(in_ch, out_ch, 1)

    def forward(self, x):
        if not eager_execution():
            return super().forward(x)
        out = F.conv2d(x, self.weight)
        n, c, h, w = out.shape
        return (out.reshape([n, c, h * w]) + self.bias.unsqueeze(-1)).reshape([n, c, h, w])
