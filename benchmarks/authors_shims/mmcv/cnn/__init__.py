from .bricks import ConvModule, build_activation_layer, build_norm_layer

__all__ = ["ConvModule", "build_activation_layer", "build_norm_layer"]
