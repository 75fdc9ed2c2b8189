"""PaddleDetection backbone: any registered ppvision_hybrid model as ``PVHBackbone``.

YAML::

    MaskRCNN:
      backbone: PVHBackbone
    PVHBackbone:
      arch: TransXNet_T            # any name from ppvision_hybrid.list_models()
      return_idx: [0, 1, 2, 3]     # stages to return (strides 4, 8, 16, 32)
      frozen_stages: -1
      pretrained: true             # False | True (registered ImageNet weights) | path
      model_kwargs: {drop_path_rate: 0.1}

Import through :func:`ppvision_hybrid.adapters.setup_det`, which applies the compat fixes
first (ppdet's ``register`` raises on a class registered twice, so this module registers once).
"""
import os

import paddle.nn as nn

from ppdet.core.workspace import register, serializable, global_config
from ppdet.modeling.shape_spec import ShapeSpec

from .common import build_pyramid_backbone, freeze_stages, ChannelLayerNorm

__all__ = ["PVHBackbone", "resolve_weights", "weights_layout_patches"]


class PVHBackbone(nn.Layer):
    """A ppvision_hybrid feature pyramid behind ppdet's backbone contract.

    ``forward(inputs)`` reads ``inputs['image']`` (NCHW, any H and W) and returns one NCHW map
    per ``return_idx`` entry; ``out_shape`` lists their channels and strides for the neck.
    The families already normalise each returned stage in ``features_only`` mode (the per-stage
    output norms their papers' dense heads use); ``extra_out_norm: layernorm`` adds a
    channel LayerNorm for a family that does not.
    """

    def __init__(self, arch="TransXNet_T", return_idx=[0, 1, 2, 3], frozen_stages=-1,
                 pretrained=False, model_kwargs=None, extra_out_norm="none"):
        super().__init__()
        self.arch = arch
        self.return_idx = [int(i) for i in return_idx]
        self.model = build_pyramid_backbone(arch, self.return_idx, pretrained, model_kwargs)
        self.frozen_parameters = freeze_stages(self.model, frozen_stages)
        if extra_out_norm not in ("none", "layernorm"):
            raise ValueError(f"extra_out_norm must be 'none' or 'layernorm', got {extra_out_norm!r}")
        self.extra_norms = nn.LayerList(
            [ChannelLayerNorm(c) for c in self.model.out_channels]) if extra_out_norm == "layernorm" else None

    def forward(self, inputs):
        feats = self.model(inputs["image"])
        if self.extra_norms is not None:
            feats = [norm(f) for norm, f in zip(self.extra_norms, feats)]
        return feats

    @property
    def out_shape(self):
        return [ShapeSpec(channels=c, stride=s)
                for c, s in zip(self.model.out_channels, self.model.out_strides)]


# ppdet's register raises on a second registration (e.g. importlib.reload of this module)
if "PVHBackbone" not in global_config:
    PVHBackbone = register(serializable(PVHBackbone))


# ---- weights in either save layout ---------------------------------------------------------
def resolve_weights(cfg, weights):
    """Where ``weights`` (a path without .pdparams, as in ``weights: output/x/model_final``) is.

    PaddleDetection develop's Checkpointer saves into ``save_dir``; the 2.6 wheel's into
    ``save_dir/<config file name>``. A local path that does not exist is looked up in the other
    layout (``D/<config name>/model_final`` or, for ``D/<config name>/model_final``,
    ``D/model_final``); URLs and existing files are returned unchanged."""
    if not isinstance(weights, str) or "://" in weights:
        return weights
    if os.path.exists(weights + ".pdparams") or os.path.isfile(weights):
        return weights
    parent, name = os.path.split(weights)
    filename = cfg.get("filename") or ""
    candidates = [os.path.join(parent, filename, name)] if filename else []
    if filename and os.path.basename(parent) == filename:
        candidates.append(os.path.join(os.path.dirname(parent), name))
    for path in candidates:
        if os.path.exists(path + ".pdparams"):
            print(f"[ppvision_hybrid] weights {weights}.pdparams not found; using {path}.pdparams "
                  f"(the other toolkit version's save layout)")
            return path
    return weights


def weights_layout_patches():
    """Trainer.load_weights / resume_weights through :func:`resolve_weights`."""
    from ppdet.engine.trainer import Trainer
    from ..compat._patching import Patch

    def resolving(original):
        def method(self, weights, *args, **kwargs):
            return original(self, resolve_weights(self.cfg, weights), *args, **kwargs)
        method.__name__, method.__wrapped__ = original.__name__, original
        return method

    return [Patch(Trainer, name, resolving(Trainer.__dict__[name]))
            for name in ("load_weights", "resume_weights")]
