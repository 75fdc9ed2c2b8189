"""Parameter initialisers (in place), matching the PyTorch defaults the papers' code uses."""
import paddle.nn as nn
from paddle.nn.initializer import Constant, KaimingNormal, TruncatedNormal

from ..paddle_compat import accepts_kwarg

zeros_ = Constant(value=0.0)
ones_ = Constant(value=1.0)


def trunc_normal_(param, std=0.02):
    # Truncated at +-2 std, like timm's trunc_normal_(std=.02) with a=-2, b=2 in absolute units
    # (for std=0.02 both truncate far outside the bulk; the difference is immaterial).
    TruncatedNormal(mean=0.0, std=std)(param)


def kaiming_normal_fan_out_(param):
    """He-normal with fan_out, as torchvision/Swin initialise convolutions."""
    if accepts_kwarg(KaimingNormal, "mode"):
        KaimingNormal(nonlinearity="relu", mode="fan_out")(param)
    else:  # Paddle 2.6 has no ``mode``: pass fan_out as the fan (same std, same draw)
        KaimingNormal(fan_in=_fan_out(param.shape), nonlinearity="relu")(param)


def _fan_out(shape):
    """fan_out as Paddle's initializers compute it: [in, out] for Linear, [out, in, *k] for conv."""
    if len(shape) == 0:
        return 1
    if len(shape) == 1:
        return shape[0]
    if len(shape) == 2:
        return shape[1]
    receptive_field = 1
    for k in shape[2:]:
        receptive_field *= k
    return shape[0] * receptive_field


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
