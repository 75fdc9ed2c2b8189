"""Stochastic depth (Huang et al. 2016), per sample, as used by every family."""
import paddle
import paddle.nn as nn


def drop_path(x, drop_prob: float = 0.0, training: bool = False):
    """Zero whole residual branches per sample and rescale the survivors by 1/keep."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = [paddle.shape(x)[0]] + [1] * (x.ndim - 1)
    mask = paddle.floor(keep_prob + paddle.rand(shape, dtype=x.dtype))
    return x / keep_prob * mask


class DropPath(nn.Layer):
    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self):
        return f"drop_prob={self.drop_prob:.3f}"
