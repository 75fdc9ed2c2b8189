"""Optimizers with PaddleClas's names, keys and meanings: AdamW, Momentum, RMSProp, Adam, SGD.

* ``weight_decay``: decoupled for AdamW; for the others a float is Paddle's coupled L2 penalty.
  ``regularizer: {name: L2|L1, coeff}`` (coupled) wins over ``weight_decay`` when both are set.
* ``no_weight_decay_name`` (space-separated substrings of parameter names) and
  ``one_dim_param_no_weight_decay`` (every 1-D parameter: norms, biases) put parameters in a
  group without decay. For Momentum, PaddleClas honours them only when ``no_weight_decay_name``
  is set (``one_dim_param_no_weight_decay`` alone is ignored there); so here, with a warning.
* ``clip_norm``: each gradient tensor is clipped to this L2 norm on its own
  (``paddle.nn.ClipGradByNorm``), as in PaddleClas -- not the global norm.
* ``clip_grad`` is accepted and, as in PaddleClas (whose AdamW swallows it), not applied; a
  warning says so.
* ``clip_global_norm`` (this engine's key; PaddleClas has none for it): all gradients scaled
  together so their global L2 norm is at most this (``ClipGradByGlobalNorm``, what timm's and the
  Swin/Focal authors' ``clip_grad_norm_`` does). PaddleClas's AdamW ignores the key.
* a nested ``lr:`` schedule (see :mod:`.lr`).
"""
import warnings

import paddle

from ..paddle_compat import accepts_kwarg
from .lr import LR_KEYS, LR_SCHEDULES, EpochScheduler, build_lr

__all__ = ["build_optimizer", "split_weight_decay", "OPTIMIZER_KEYS", "LR_KEYS", "LR_SCHEDULES",
           "EpochScheduler", "build_lr"]

_COMMON = ("name", "lr", "weight_decay", "regularizer", "clip_norm", "clip_grad", "clip_global_norm",
           "multi_precision")
_NO_DECAY = ("no_weight_decay_name", "one_dim_param_no_weight_decay")
#: accepted keys per optimizer (the config validator reads this)
OPTIMIZER_KEYS = {
    "AdamW": _COMMON + _NO_DECAY + ("beta1", "beta2", "epsilon", "amsgrad"),
    "Momentum": _COMMON + _NO_DECAY + ("momentum", "use_nesterov"),
    "RMSProp": _COMMON + _NO_DECAY + ("momentum", "rho", "epsilon"),
    "Adam": _COMMON + ("beta1", "beta2", "epsilon", "lazy_mode"),
    "SGD": _COMMON,
}


def _no_decay_substrings(value):
    if not value:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def split_weight_decay(model, no_weight_decay_name=None, one_dim_param_no_weight_decay=False):
    """Return ``(decay, no_decay)`` lists of ``(structured_name, param)`` over trainable params."""
    subs = _no_decay_substrings(no_weight_decay_name)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.stop_gradient:
            continue
        skip = any(s in name for s in subs) or (one_dim_param_no_weight_decay and len(p.shape) == 1)
        (no_decay if skip else decay).append((name, p))
    return decay, no_decay


def _decay_value(cfg, name):
    """The decay the config asks for: a float (decoupled for AdamW, coupled L2 otherwise) or a
    Paddle regularizer object (``regularizer:``)."""
    from ..data.transforms import parse_number
    reg = cfg.get("regularizer")
    if isinstance(reg, dict):
        if cfg.get("weight_decay") is not None:
            warnings.warn("Optimizer: both regularizer and weight_decay are set; weight_decay is "
                          "ignored, as in PaddleClas")
        kind = str(reg.get("name", "L2"))
        if kind not in ("L1", "L2"):
            raise ValueError(f"Optimizer.regularizer.name must be L1 or L2, got {kind!r}")
        coeff = parse_number(reg.get("coeff", 0.0) or 0.0)
        if name == "AdamW":  # decoupled decay with the same coefficient
            return coeff
        return getattr(paddle.regularizer, kind + "Decay")(coeff)
    return parse_number(cfg.get("weight_decay") or 0.0)


def _grad_clip(cfg):
    from ..data.transforms import parse_number
    clip_grad = cfg.get("clip_grad")
    if clip_grad not in (None, "None", "none", "null"):
        warnings.warn(f"Optimizer.clip_grad={clip_grad} is not applied: PaddleClas's optimizers "
                      f"ignore this key, and so does this engine (use clip_norm to clip each "
                      f"gradient tensor by its norm)")
    clip, global_clip = cfg.get("clip_norm"), cfg.get("clip_global_norm")
    if clip and global_clip:
        raise ValueError("Optimizer: clip_norm (each tensor) and clip_global_norm (all together) are both "
                         "set; keep one")
    if global_clip:
        return paddle.nn.ClipGradByGlobalNorm(parse_number(global_clip))
    return paddle.nn.ClipGradByNorm(parse_number(clip)) if clip else None


def build_optimizer(opt_cfg, model, epochs, iters_per_epoch):
    """Returns ``(optimizer, lr_scheduler, groups)``; ``groups`` maps "decay"/"no_decay" to the
    structured parameter names in each group (used by tests and logged at start).
    ``iters_per_epoch`` counts optimizer updates (batches / ``Global.update_freq``)."""
    from ..data.transforms import parse_number
    cfg = dict(opt_cfg)
    name = cfg.get("name")
    if name not in OPTIMIZER_KEYS:
        raise ValueError(f"unknown optimizer '{name}'; accepted: {sorted(OPTIMIZER_KEYS)}")
    lr = build_lr(cfg.get("lr", 0.001), epochs, iters_per_epoch)
    wd = _decay_value(cfg, name)
    names, one_dim = cfg.get("no_weight_decay_name"), bool(cfg.get("one_dim_param_no_weight_decay", False))
    if name == "Momentum" and one_dim and not _no_decay_substrings(names):
        warnings.warn("Optimizer.one_dim_param_no_weight_decay is ignored for Momentum unless "
                      "no_weight_decay_name is set (PaddleClas's rule): every parameter is decayed")
        one_dim = False
    if name in ("Adam", "SGD"):
        names, one_dim = None, False
    decay, no_decay = split_weight_decay(model, names, one_dim)
    groups = {"decay": [n for n, _ in decay], "no_decay": [n for n, _ in no_decay]}
    param_groups = [{"params": [p for _, p in decay], "weight_decay": wd}]
    if no_decay:
        param_groups.append({"params": [p for _, p in no_decay], "weight_decay": 0.0})
    common = dict(learning_rate=lr, parameters=param_groups, grad_clip=_grad_clip(cfg))
    multi_precision = bool(cfg.get("multi_precision", False))
    if name == "AdamW":
        amsgrad = bool(cfg.get("amsgrad", False))
        extra = {}
        if accepts_kwarg(paddle.optimizer.AdamW, "amsgrad"):
            extra["amsgrad"] = amsgrad
        elif amsgrad:  # Paddle 2.6's AdamW has no AMSGrad variant
            raise ValueError(f"Optimizer.amsgrad: True needs Paddle >= 3.0 (installed: {paddle.__version__})")
        opt = paddle.optimizer.AdamW(
            beta1=parse_number(cfg.get("beta1", 0.9)), beta2=parse_number(cfg.get("beta2", 0.999)),
            epsilon=parse_number(cfg.get("epsilon", 1e-8)), weight_decay=wd,
            multi_precision=multi_precision, **common, **extra)
    elif name == "Momentum":
        opt = paddle.optimizer.Momentum(
            momentum=parse_number(cfg.get("momentum", 0.9)), use_nesterov=bool(cfg.get("use_nesterov", False)),
            weight_decay=wd, multi_precision=multi_precision, **common)
    elif name == "RMSProp":
        opt = paddle.optimizer.RMSProp(
            rho=parse_number(cfg.get("rho", 0.95)), epsilon=parse_number(cfg.get("epsilon", 1e-6)),
            momentum=parse_number(cfg.get("momentum", 0.0)), weight_decay=wd, **common)
    elif name == "Adam":
        opt = paddle.optimizer.Adam(
            beta1=parse_number(cfg.get("beta1", 0.9)), beta2=parse_number(cfg.get("beta2", 0.999)),
            epsilon=parse_number(cfg.get("epsilon", 1e-8)), weight_decay=wd,
            lazy_mode=bool(cfg.get("lazy_mode", False)), multi_precision=multi_precision, **common)
    else:
        opt = paddle.optimizer.SGD(weight_decay=wd, multi_precision=multi_precision, **common)
    return opt, lr, groups
