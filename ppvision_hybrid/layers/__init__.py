"""Building blocks shared by the families. Knows no family."""
from .drop import DropPath, drop_path
from .init import trunc_normal_, zeros_, ones_, kaiming_normal_fan_out_, init_weights_vit
from .window import pad_nhwc, pad_to_multiple, window_partition, window_reverse
from .relpos import relative_position_index
from .conv_bn import ConvBN, ConvBNAct, DepthwiseConvBN, DepthwiseConvBNAct
from .mlp import Mlp
from .channels_last import batch_norm_channels_last
from .reparam import (re_parameterize_layers, Scale, batch_norm_affine, conv2d_with, fuse_conv_bn,
                      fold_into_conv1x1, affine_as_depthwise_conv, embed_kernel)
from .contraction import matmul_any_contraction, static_token_count
from .resample import adaptive_pool_matrix, adaptive_avg_pool2d_matmul, floor_with_fraction, bicubic_resize
from .depthwise import DepthwiseConv2D, depthwise_conv2d, per_sample_depthwise_conv2d
from .activation import GELU, gelu
from .pointwise import PointwiseConv2D
from .broadcast import broadcast_add

__all__ = [
    "DropPath", "drop_path", "trunc_normal_", "zeros_", "ones_",
    "kaiming_normal_fan_out_", "init_weights_vit", "pad_nhwc", "pad_to_multiple", "window_partition",
    "window_reverse", "relative_position_index", "ConvBN", "ConvBNAct", "Mlp",
    "batch_norm_channels_last", "adaptive_pool_matrix",
    "adaptive_avg_pool2d_matmul", "floor_with_fraction", "re_parameterize_layers", "Scale", "batch_norm_affine",
    "conv2d_with", "fuse_conv_bn", "fold_into_conv1x1", "affine_as_depthwise_conv", "embed_kernel",
    "DepthwiseConv2D", "depthwise_conv2d", "GELU", "gelu", "bicubic_resize", "matmul_any_contraction",
    "static_token_count", "per_sample_depthwise_conv2d", "DepthwiseConvBN", "DepthwiseConvBNAct",
    "PointwiseConv2D", "broadcast_add",
]
