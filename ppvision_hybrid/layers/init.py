"""Parameter initialisers (in place), matching the PyTorch defaults the papers' code uses."""
import paddle.nn as nn
from paddle.nn.initializer import Constant, KaimingNormal, TruncatedNormal

zeros_ = Constant(value=0.0)
ones_ = Constant(value=1.0)


def constant_(param, value):
    Constant(value=value)(param)


def trunc_normal_(param, std=0.02):
    # Truncated at +-2 std, like timm's trunc_normal_(std=.02) with a=-2, b=2 in absolute units
    # (for std=0.02 both truncate far outside the bulk; the difference is immaterial).
    TruncatedNormal(mean=0.0, std=std)(param)


def kaiming_normal_fan_out_(param):
    """He-normal with fan_out, as torchvision/Swin initialise convolutions."""
    KaimingNormal(nonlinearity="relu", mode="fan_out")(param)


def init_weights_vit(layer):
    """Swin/ViT convention: trunc-normal(0.02) Linear weights, zero biases, LN (1, 0)."""
    if isinstance(layer, nn.Linear):
        trunc_normal_(layer.weight)
        if layer.bias is not None:
            zeros_(layer.bias)
    elif isinstance(layer, (nn.LayerNorm, nn.GroupNorm)):
        if layer.weight is not None:
            ones_(layer.weight)
        if layer.bias is not None:
            zeros_(layer.bias)
