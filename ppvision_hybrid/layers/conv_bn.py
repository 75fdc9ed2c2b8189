"""Conv2D + BatchNorm (+ activation), the conv-BN unit several families share."""
import paddle.nn as nn

from .activation import GELU
from .depthwise import DepthwiseConv2D
from .reparam import fuse_conv_bn


class ConvBN(nn.Sequential):
    """Conv2D followed by BatchNorm2D; sublayer names ``0``/``1`` follow nn.Sequential."""

    def __init__(self, in_ch, out_ch, kernel_size=1, stride=1, padding=None, groups=1,
                 bias=False, bn_eps=1e-5):
        padding = kernel_size // 2 if padding is None else padding
        super().__init__(
            nn.Conv2D(in_ch, out_ch, kernel_size, stride=stride, padding=padding, groups=groups,
                      bias_attr=None if bias else False),
            nn.BatchNorm2D(out_ch, epsilon=bn_eps),
        )

    def deploy_twin(self):
        """Inference form: one convolution with the BatchNorm folded in."""
        return fuse_conv_bn(self[0], self[1])


class ConvBNAct(nn.Sequential):
    """Conv2D + BatchNorm2D + activation (GELU by default)."""

    def __init__(self, in_ch, out_ch, kernel_size=1, stride=1, padding=None, groups=1,
                 bias=False, act_layer=nn.GELU, bn_eps=1e-5):
        padding = kernel_size // 2 if padding is None else padding
        super().__init__(
            nn.Conv2D(in_ch, out_ch, kernel_size, stride=stride, padding=padding, groups=groups,
                      bias_attr=None if bias else False),
            nn.BatchNorm2D(out_ch, epsilon=bn_eps),
            act_layer(),
        )

    def deploy_twin(self):
        """Inference form: the convolution with the BatchNorm folded in, then the activation."""
        return nn.Sequential(fuse_conv_bn(self[0], self[1]), self[2])


class DepthwiseConvBN(ConvBN):
    """``ConvBN(channels, channels, kernel_size, groups=channels)`` (same keys and parameters) on
    :class:`DepthwiseConv2D`, whose eager CPU forward and backward run the fast kernel."""

    def __init__(self, channels, kernel_size=1, stride=1, padding=None, bias=False, bn_eps=1e-5):
        padding = kernel_size // 2 if padding is None else padding
        nn.Sequential.__init__(
            self,
            DepthwiseConv2D(channels, kernel_size, stride=stride, padding=padding, bias_attr=None if bias else False),
            nn.BatchNorm2D(channels, epsilon=bn_eps),
        )


class DepthwiseConvBNAct(ConvBNAct):
    """``ConvBNAct(channels, channels, kernel_size, groups=channels)`` (same keys and parameters)
    on :class:`DepthwiseConv2D` and, by default, :class:`~.activation.GELU`: both run the fast
    eager CPU kernels."""

    def __init__(self, channels, kernel_size=1, stride=1, padding=None, bias=False, act_layer=GELU, bn_eps=1e-5):
        padding = kernel_size // 2 if padding is None else padding
        nn.Sequential.__init__(
            self,
            DepthwiseConv2D(channels, kernel_size, stride=stride, padding=padding, bias_attr=None if bias else False),
            nn.BatchNorm2D(channels, epsilon=bn_eps),
            act_layer(),
        )
