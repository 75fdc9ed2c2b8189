"""``ConvModule`` (conv -> norm -> activation), ``build_norm_layer``, ``build_activation_layer``
for the configs the authors' TransXNet uses (BN/BN2d, GN, LN; GELU, ReLU, SiLU...)."""
from torch import nn

_NORMS = {"BN": ("bn", nn.BatchNorm2d), "BN2d": ("bn", nn.BatchNorm2d), "SyncBN": ("bn", nn.BatchNorm2d),
          "GN": ("gn", nn.GroupNorm), "LN": ("ln", nn.LayerNorm)}
_ACTS = {"ReLU": nn.ReLU, "GELU": nn.GELU, "SiLU": nn.SiLU, "Swish": nn.SiLU, "Sigmoid": nn.Sigmoid,
         "Tanh": nn.Tanh, "LeakyReLU": nn.LeakyReLU, "HSwish": nn.Hardswish, "HSigmoid": nn.Hardsigmoid}


def build_norm_layer(cfg, num_features, postfix=""):
    """``(name, layer)`` as mmcv returns it; ``name`` is the abbreviation plus ``postfix``."""
    cfg = dict(cfg)
    kind = cfg.pop("type")
    requires_grad = cfg.pop("requires_grad", True)
    cfg.setdefault("eps", 1e-5)
    abbr, cls = _NORMS[kind]
    if cls is nn.GroupNorm:
        layer = nn.GroupNorm(num_channels=num_features, **cfg)
    else:
        layer = cls(num_features, **cfg)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return abbr + str(postfix), layer


def build_activation_layer(cfg):
    cfg = dict(cfg)
    return _ACTS[cfg.pop("type")](**cfg)


class ConvModule(nn.Module):
    """Conv2d, then the norm (if ``norm_cfg``), then the activation (if ``act_cfg``), in mmcv's
    default order; ``bias='auto'`` means a bias only without a norm."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias="auto", conv_cfg=None, norm_cfg=None, act_cfg=dict(type="ReLU"),
                 inplace=True, **unused):
        super().__init__()
        if bias == "auto":
            bias = norm_cfg is None
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.norm_name = None
        if norm_cfg is not None:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        self.activate = build_activation_layer(act_cfg) if act_cfg is not None else None

    def forward(self, x):
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        if self.activate is not None:
            x = self.activate(x)
        return x
