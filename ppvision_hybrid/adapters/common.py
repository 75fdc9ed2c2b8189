"""Toolkit-independent part of the adapters: build a registered model as a feature pyramid,
freeze early stages, optionally add output norms."""
import re

import paddle
import paddle.nn as nn

from ..registry import create_model, get_model_spec

__all__ = ["build_pyramid_backbone", "freeze_stages", "ChannelLayerNorm", "stage_parameter_names"]

#: name prefixes of the stem in our families (patch embedding / conv stem)
STEM_PREFIXES = ("stem", "patch_embed")
#: parameter-name patterns of stage ``i`` (``{i}`` replaced); a family whose names differ can
#: define ``dense_stage_prefixes(i)`` returning its own prefixes.
STAGE_PATTERNS = (r"^(stages|layers|blocks)\.{i}\.", r"^relative_pos_enc\.{i}$", r"^stage{i}\.")


class ChannelLayerNorm(nn.Layer):
    """LayerNorm over the channels of an NCHW map (the per-stage output norm of Swin-style
    dense backbones), for families whose pyramid is not normalised already."""

    def __init__(self, channels, epsilon=1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, epsilon=epsilon)

    def forward(self, x):
        return self.norm(x.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])


def build_pyramid_backbone(arch, out_indices=(0, 1, 2, 3), pretrained=False, model_kwargs=None):
    """``create_model(arch, features_only=True, out_indices=...)`` plus ImageNet weights loaded
    the dense way (see :func:`load_classification_weights`)."""
    get_model_spec(arch)  # unknown names: KeyError with close matches
    out_indices = tuple(int(i) for i in out_indices)
    kwargs = dict(model_kwargs or {})
    model = create_model(arch, pretrained=False, features_only=True, out_indices=out_indices, **kwargs)
    if pretrained is not False and pretrained is not None:
        load_classification_weights(model, arch, pretrained, kwargs)
    return model


def load_classification_weights(model, arch, pretrained, model_kwargs=None):
    """Load an ImageNet (classification) checkpoint into a ``features_only`` pyramid.

    A pyramid differs from the classifier the checkpoint was saved from in exactly two ways:
    it has no classifier (those keys are dropped) and some families add per-stage output norms
    for dense heads (those start from their initialisation, as in the papers' detection code).
    Both key sets are computed by comparing with the classification model; any other missing,
    unexpected or mis-shaped key is an error (never a silent partial load).
    ``pretrained``: True (the registered weights of ``arch``) or a local .pdparams path."""
    from ..weights import CheckpointError, download_weights, list_weights, load_checkpoint_file
    if pretrained is True:
        entries = list_weights(arch)
        if not entries:
            raise CheckpointError(f"no pretrained weights are registered for '{arch}'; set "
                                  f"pretrained to a local .pdparams path or to false")
        path = download_weights(entries[0])
    elif isinstance(pretrained, str):
        path = pretrained
    else:
        raise TypeError(f"pretrained must be false, true or a path, got {pretrained!r}")
    state = load_checkpoint_file(path)
    ours = model.state_dict()
    with paddle.LazyGuard():
        classifier = create_model(arch, **{k: v for k, v in (model_kwargs or {}).items()})
    classifier_keys = set(classifier.state_dict())
    head_only = classifier_keys - set(ours)
    dense_only = set(ours) - classifier_keys
    unexpected = sorted(set(state) - set(ours) - head_only)
    missing = sorted(set(ours) - set(state) - dense_only)
    mismatched = sorted(k for k in set(state) & set(ours)
                        if tuple(state[k].shape) != tuple(ours[k].shape))
    if unexpected or missing or mismatched:
        raise CheckpointError(f"{path} does not fit the {arch} pyramid: missing {missing[:8]}, "
                              f"unexpected {unexpected[:8]}, shape mismatches {mismatched[:8]}")
    model.set_state_dict({k: v for k, v in state.items() if k in ours})
    return sorted(dense_only)


def stage_parameter_names(model, stage):
    """Names of the parameters of stage ``stage`` (or of the stem for ``stage == -1``)."""
    names = [n for n, _ in model.named_parameters()]
    if stage < 0:
        return [n for n in names if n.startswith(STEM_PREFIXES)]
    if hasattr(model, "dense_stage_prefixes"):
        prefixes = tuple(model.dense_stage_prefixes(stage))
        return [n for n in names if n.startswith(prefixes)]
    patterns = [re.compile(p.format(i=stage)) for p in STAGE_PATTERNS]
    return [n for n in names if any(p.search(n) for p in patterns)]


def freeze_stages(model, frozen_stages):
    """mmdet/ppdet semantics: -1 freezes nothing, 0 the stem, k the stem and stages 0..k-1.

    Frozen parameters get ``stop_gradient=True``; BatchNorm layers inside frozen parts switch
    to their running statistics. Stage membership comes from the parameter names (see
    ``STAGE_PATTERNS``) or the family's ``dense_stage_prefixes(i)``; the down-sampling layers
    between stages stay trainable unless the family lists them. Returns the frozen names and
    raises when a requested part has no parameters (never a silent no-op)."""
    frozen_stages = int(frozen_stages)
    if frozen_stages < 0:
        return []
    frozen = []
    for stage in range(-1, frozen_stages):
        names = stage_parameter_names(model, stage)
        if not names:
            what = "stem" if stage < 0 else f"stage {stage}"
            raise ValueError(f"frozen_stages={frozen_stages}: found no parameters of the {what} "
                             f"in {type(model).__name__}; the family should define "
                             f"dense_stage_prefixes(i)")
        frozen += names
    params = dict(model.named_parameters())
    for n in frozen:
        params[n].stop_gradient = True
    frozen_prefixes = tuple(n.rsplit(".", 1)[0] + "." for n in frozen)
    for lname, layer in model.named_sublayers():
        if isinstance(layer, nn.layer.norm._BatchNormBase) and (lname + ".").startswith(frozen_prefixes):
            layer._use_global_stats = True
    return frozen


def smallest_variant(family):
    """The registered variant of ``family`` with the fewest parameters (reference counts when
    registered, else counted on a lazily built model)."""
    from ..registry import list_models

    def size(name):
        ref = get_model_spec(name).reference.get("params")
        if ref:
            return float(ref)
        with paddle.LazyGuard():
            model = create_model(name)
        return float(sum(int(np.prod(p.shape)) for p in model.parameters()))

    import numpy as np
    return min(list_models(family=family), key=size)
