"""PaddleSeg backbone: any registered ppvision_hybrid model as ``PVHBackbone``.

YAML::

    model:
      type: UPerNet
      backbone:
        type: PVHBackbone
        arch: MAFormer_S
        out_indices: [0, 1, 2, 3]
        pretrained: true          # False | True (registered ImageNet weights) | path
      backbone_indices: [0, 1, 2, 3]

Import through :func:`ppvision_hybrid.adapters.setup_seg` (applies the compat fixes first).
"""
import paddle.nn as nn

from paddleseg.cvlibs import manager

from .common import build_pyramid_backbone, freeze_stages, ChannelLayerNorm

__all__ = ["PVHBackbone"]


class PVHBackbone(nn.Layer):
    """``forward(x)`` returns the NCHW maps of ``out_indices``; ``feat_channels`` their widths
    (read by UPerNet / PFPNNet through ``backbone_indices``)."""

    def __init__(self, arch="TransXNet_T", out_indices=(0, 1, 2, 3), pretrained=False,
                 frozen_stages=-1, model_kwargs=None, extra_out_norm="none", in_channels=3):
        super().__init__()
        if int(in_channels) != 3:
            raise ValueError("PVHBackbone takes 3-channel images")
        self.arch = arch
        self.model = build_pyramid_backbone(arch, out_indices, pretrained, model_kwargs)
        self.frozen_parameters = freeze_stages(self.model, frozen_stages)
        self.feat_channels = list(self.model.out_channels)
        self.feat_strides = list(self.model.out_strides)
        if extra_out_norm not in ("none", "layernorm"):
            raise ValueError(f"extra_out_norm must be 'none' or 'layernorm', got {extra_out_norm!r}")
        self.extra_norms = nn.LayerList(
            [ChannelLayerNorm(c) for c in self.feat_channels]) if extra_out_norm == "layernorm" else None

    def forward(self, x):
        feats = self.model(x)
        if self.extra_norms is not None:
            feats = [norm(f) for norm, f in zip(self.extra_norms, feats)]
        return feats


if "PVHBackbone" not in manager.BACKBONES.components_dict:
    manager.BACKBONES.add_component(PVHBackbone)
