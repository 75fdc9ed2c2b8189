"""The one template every family uses (timm/PaddleClas conventions).

A family file holds its layers, one :class:`HybridBackbone` subclass and one variant table,
registered with :func:`register_variants` (the builder, like timm's ``build_model_with_cfg``).
The subclass implements:

* ``forward_features(x)`` -> pooled feature vector ``[B, num_features]`` (PaddleClas convention);
* ``forward_pyramid(x)`` -> list of NCHW maps, one per entry of ``self.out_indices``
  (stage ``i`` has stride ``4 * 2**i``); any input size, padding handled inside.

and sets ``feature_info`` / ``num_features``. The base class provides ``forward``
(classification, or the pyramid when ``features_only=True``), ``forward_head`` /
``reset_classifier`` / head init for a Linear ``head`` (:meth:`HybridBackbone.classifier`),
per-stage output norms in one container (:class:`StageNorms`, keys ``out_norms.<i>.*``), the
stochastic-depth schedule (:func:`drop_path_rates`), input validation with clear errors,
``out_channels`` / ``out_strides`` for dense-task adapters, ``no_weight_decay`` and
``re_parameterize`` (the inference form; layers opt in with ``deploy_twin``, see
:mod:`ppvision_hybrid.layers.reparam`).

``features_only=True`` means the same thing in every family: ``forward`` returns
``forward_pyramid``, each returned stage goes through the family's per-stage norm (where its
paper's dense heads use one), and a model built without a classifier refuses
``forward_features`` / ``reset_classifier`` with one message.
"""
import warnings
from dataclasses import dataclass, field
from typing import Dict

import numpy as np
import paddle
import paddle.nn as nn

from ..layers import init_weights_vit, re_parameterize_layers
from ..registry import register_model

__all__ = ["HybridBackbone", "StageNorms", "Variant", "build_model", "drop_path_rates",
           "reference_counts", "register_variants", "validate_model_args"]


def drop_path_rates(drop_path_rate, depths):
    """Stochastic depth rising linearly from 0 to ``drop_path_rate`` over all blocks (the rule of
    Swin, timm and every family here), split per stage: ``[[rates of stage 0], ...]``."""
    rates = np.linspace(0, drop_path_rate, sum(depths)).tolist()
    starts = np.cumsum([0] + list(depths)).tolist()
    return [rates[starts[i]:starts[i + 1]] for i in range(len(depths))]


class StageNorms(nn.LayerDict):
    """The per-stage output norms of a dense backbone, one per returned stage, keyed by stage
    index (state-dict keys ``out_norms.<i>.*``, the authors' dense releases' layout)."""

    def __init__(self, make_norm, channels, stages):
        super().__init__({str(i): make_norm(channels[i]) for i in stages})

    def normalize(self, stage, x):
        return self[str(stage)](x)


#: constructor arguments that must be positive integers (a scalar or one per stage)
_POSITIVE_INT_ARGS = ("in_chans", "window_size", "focal_windows", "stripes", "gld_grid",
                      "kernel_size", "dwconv_kernel_size", "sr_ratios", "down_rates", "img_size",
                      "embed_dim", "embed_dims", "dims", "num_heads", "last_dim")
#: probabilities in [0, 1)
_RATE_ARGS = ("drop_rate", "attn_drop_rate", "drop_path_rate")


def validate_model_args(model_name, kwargs):
    """Refuse a constructor argument out of its range, naming it (a ModelArgumentError, a
    ValueError): ``class_num`` >= 0 (0: no head), drop rates in [0, 1), window sizes, heads,
    widths and the like > 0, ``out_indices`` a non-empty subset of 0..3."""
    from ..cli_errors import ModelArgumentError

    def refuse(key, value, need):
        return ModelArgumentError(f"{model_name}: {key}={value!r} is out of range: {need}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if "class_num" in kwargs and not (is_int(kwargs["class_num"]) and kwargs["class_num"] >= 0):
        raise refuse("class_num", kwargs["class_num"], "an integer >= 1 (0 builds the model without a head)")
    for key in _RATE_ARGS:
        value = kwargs.get(key)
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value < 1):
            raise refuse(key, value, "a probability in [0, 1)")
    for key in _POSITIVE_INT_ARGS:
        value = kwargs.get(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        if value is not None and not all(is_int(v) and v > 0 for v in values):
            raise refuse(key, value, "positive integers")
    if "out_indices" in kwargs:
        value = kwargs["out_indices"]
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values or not all(is_int(v) and 0 <= v <= 3 for v in values):
            raise refuse("out_indices", value, "a non-empty subset of the stages 0, 1, 2, 3")


class HybridBackbone(nn.Layer):
    #: parameter-name prefixes of the classifier; dropped when loading a checkpoint whose
    #: class count differs.
    classifier_prefixes = ("head.",)
    #: substrings of parameter names excluded from weight decay (matches the YAML
    #: ``Optimizer.no_weight_decay_name``).
    no_weight_decay_keywords = ()

    def __init__(self, in_chans=3, class_num=1000, out_indices=(0, 1, 2, 3), features_only=False,
                 min_input_size=1):
        super().__init__()
        self.in_chans = int(in_chans)
        self.class_num = int(class_num)
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i < 0 or i > 3 for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty subset of (0, 1, 2, 3), got {out_indices}")
        self.out_indices = out_indices
        self.features_only = bool(features_only)
        self.min_input_size = int(min_input_size)
        #: one dict per stage: {"channels": C_i, "stride": 4 * 2**i}; set by the subclass.
        self.feature_info = []
        self.num_features = 0

    # ---- surface implemented by each family -------------------------------------------------
    def forward_features(self, x):
        raise NotImplementedError

    def forward_pyramid(self, x):
        raise NotImplementedError

    # ---- classifier -------------------------------------------------------------------------
    def classifier(self, class_num):
        """A new (uninitialised) classifier for ``class_num`` classes; ``Identity`` for 0."""
        return nn.Linear(self.num_features, class_num) if class_num > 0 else nn.Identity()

    @staticmethod
    def init_head(head):
        """Head init of every family's authors: trunc-normal(0.02) weight, zero bias."""
        init_weights_vit(head)

    def has_classifier(self):
        return getattr(self, "head", None) is not None

    def require_classifier(self, what):
        if not self.has_classifier():
            raise RuntimeError(f"a features_only {type(self).__name__} has no classifier ({what}); "
                               f"use forward_pyramid, or build it without features_only")

    def forward_head(self, x):
        return self.head(x)

    def reset_classifier(self, class_num):
        """Replace the classifier by a freshly initialised one for ``class_num`` classes
        (0: ``forward`` returns the pooled features)."""
        self.require_classifier("reset_classifier")
        self.class_num = int(class_num)
        self.head = self.classifier(self.class_num)
        self.init_head(self.head)

    # ---- shared ---------------------------------------------------------------------------
    def forward(self, x):
        self.check_input(x)
        if self.features_only:
            return self.forward_pyramid(x)
        return self.forward_head(self.forward_features(x))

    def check_input(self, x):
        """Raise a clear error for inputs the model cannot take (checked on static dims only)."""
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects a 4-D NCHW batch, got shape {list(x.shape)}")
        channels = x.shape[1]
        if isinstance(channels, int) and channels >= 0 and channels != self.in_chans:
            raise ValueError(f"{type(self).__name__} was built for {self.in_chans} input channels, "
                             f"got {channels} (input shape {list(x.shape)}). NCHW layout is expected.")
        for side in x.shape[2:]:
            if isinstance(side, int) and 0 <= side < self.min_input_size:
                raise ValueError(f"{type(self).__name__} needs inputs of at least "
                                 f"{self.min_input_size}x{self.min_input_size}, got {list(x.shape)}")

    @property
    def out_channels(self):
        return [self.feature_info[i]["channels"] for i in self.out_indices]

    @property
    def out_strides(self):
        return [self.feature_info[i]["stride"] for i in self.out_indices]

    def no_weight_decay(self):
        """Names of parameters that should get no weight decay (norms excluded by the optimizer's
        ``one_dim_param_no_weight_decay``)."""
        return {n for n, _ in self.named_parameters()
                if any(k in n for k in self.no_weight_decay_keywords)}

    # ---- inference form -------------------------------------------------------------------
    #: True once :meth:`re_parameterize` has run (PaddleClas's export reads this attribute).
    is_repped = False

    def re_parameterize(self):
        """Switch this eval-mode model to its inference form, in place, and return it.

        Every fold is computed once, in eager mode, from the current weights: BatchNorms into
        the convolutions next to them, layer scales into weights, merged kernels, attention
        scales into the query projection; layers whose inference form differs are swapped for
        their deploy twins. The outputs stay the same (to float rounding); the parameter names
        do not (load checkpoints before, save the original model, not this one). Idempotent.
        PaddleClas's export calls it by this name, PaddleDetection's as ``convert_to_deploy``;
        :func:`ppvision_hybrid.export.export_inference_model` re-parameterizes a copy.
        """
        if self.training:
            raise RuntimeError(f"{type(self).__name__}.re_parameterize() folds BatchNorm running statistics "
                               f"and needs eval mode: call model.eval() first")
        if not self.is_repped:
            re_parameterize_layers(self)
            self.is_repped = True
        return self

    convert_to_deploy = re_parameterize  # PaddleDetection's name for the same step

    def classifier_state_keys(self):
        return [k for k in self.state_dict() if k.startswith(tuple(self.classifier_prefixes))]


#: PaddleClas's model-independent Arch keys and what they do here. ``data_format: NHWC`` asks
#: PaddleClas's CNNs to compute channels-last internally (inputs stay NCHW); these models keep
#: their own layouts, so it is accepted as a no-op, as are the fused-kernel switches (GPU
#: kernels PaddleClas uses in ViT/Swin; no equivalent here). ``use_sync_bn`` converts the
#: BatchNorm layers to SyncBatchNorm on a GPU, as PaddleClas does.
GENERIC_ARCH_KEYS = {
    "data_format": ("NCHW", "NHWC"),
    "use_fused_attn": (False, True),
    "use_fused_linear": (False, True),
    "use_sync_bn": (False, True),
}


def _generic_arch_keys(model_name, kwargs):
    """Pop PaddleClas's generic Arch keys from ``kwargs``; warn once for those that are no-ops."""
    if kwargs.pop("use_ssld", False):
        raise ValueError(f"{model_name}: no SSLD-distilled weights exist (PaddleClas's use_ssld selects "
                         f"them); drop use_ssld or set it to False")
    generic = {k: kwargs.pop(k) for k in list(kwargs) if k in GENERIC_ARCH_KEYS}
    for key, value in generic.items():
        if value not in GENERIC_ARCH_KEYS[key]:
            raise ValueError(f"Arch.{key} must be one of {GENERIC_ARCH_KEYS[key]}, got {value!r}")
    notes = [f"{k}={v}" for k, v in generic.items()
             if k != "use_sync_bn" and v not in (False, "NCHW")]
    if notes:
        warnings.warn(f"{model_name}: {', '.join(notes)} accepted as a no-op (PaddleClas layout/"
                      f"fused-kernel switches; this model keeps its own kernels; inputs stay NCHW)")
    return bool(generic.get("use_sync_bn", False))


def build_model(cls, model_name, pretrained=False, **kwargs):
    """Construct ``cls(**kwargs)`` and load weights per ``pretrained`` (False/True/path).
    PaddleClas's generic Arch keys (:data:`GENERIC_ARCH_KEYS`) are taken here."""
    from ..weights import load_pretrained  # weights imports the registry, not the models
    use_sync_bn = _generic_arch_keys(model_name, kwargs)
    validate_model_args(model_name, kwargs)
    model = cls(**kwargs)
    model.model_name = model_name
    load_pretrained(model, model_name, pretrained)
    if use_sync_bn:
        if paddle.device.is_compiled_with_cuda() and paddle.get_device().startswith("gpu"):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            warnings.warn(f"{model_name}: use_sync_bn=True needs a GPU; ignored (as in PaddleClas)")
    return model


def reference_counts(params, macs, params_tol=0.01, macs_tol=0.01, source=""):
    """The registry's ``reference`` entry: trainable parameters and MACs at 224 with tolerances."""
    return dict(params=params, macs=macs, params_tol=params_tol, macs_tol=macs_tol, source=source)


@dataclass(frozen=True)
class Variant:
    """One row of a family's variant table: constructor defaults, reference counts, a doc line."""
    cfg: Dict
    reference: Dict = field(default_factory=dict)
    doc: str = ""


def register_variants(cls, family, paper, variants, namespace=None, **spec):
    """Register one PaddleClas-style factory per row of ``variants`` (``{name: Variant}``).

    ``Name(pretrained=False, class_num=1000, **kwargs)`` builds ``cls(**{**variant.cfg,
    **kwargs})`` through :func:`build_model`. The factories are also placed in ``namespace``
    (the family module's ``globals()``) so ``from ...models.family import Name`` works. ``spec``
    goes to :func:`ppvision_hybrid.registry.register_model` (``default_input``, ``min_input``).
    """
    factories = {}
    for name, variant in variants.items():
        factories[name] = register_model(family, paper=paper, reference=variant.reference,
                                         **spec)(_variant_factory(cls, name, variant, paper))
    if namespace is not None:
        namespace.update(factories)
    return factories


def _variant_factory(cls, name, variant, paper):
    def factory(pretrained=False, class_num=1000, **kwargs):
        return build_model(cls, name, pretrained, class_num=class_num, **{**variant.cfg, **kwargs})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{name}: {variant.doc or cls.__name__} ({paper})."
    return factory
