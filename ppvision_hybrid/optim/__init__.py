"""Optimizers (AdamW, Momentum) with PaddleClas keys: ``weight_decay``, ``no_weight_decay_name``
(space-separated substrings of parameter names), ``one_dim_param_no_weight_decay`` (norms and
biases), ``clip_norm`` (global-norm gradient clipping) and a nested ``lr:`` schedule."""
import paddle

from ..paddle_compat import accepts_kwarg
from .lr import LR_KEYS, LR_SCHEDULES, EpochScheduler, build_lr

__all__ = ["build_optimizer", "split_weight_decay", "OPTIMIZER_KEYS", "LR_KEYS", "LR_SCHEDULES",
           "EpochScheduler", "build_lr"]

_COMMON = ("name", "lr", "weight_decay", "no_weight_decay_name", "one_dim_param_no_weight_decay",
           "clip_norm", "multi_precision", "regularizer")
#: accepted keys per optimizer (the config validator reads this)
OPTIMIZER_KEYS = {
    "AdamW": _COMMON + ("beta1", "beta2", "epsilon", "amsgrad"),
    "Momentum": _COMMON + ("momentum", "use_nesterov"),
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


def build_optimizer(opt_cfg, model, epochs, iters_per_epoch):
    """Returns ``(optimizer, lr_scheduler, groups)``; ``groups`` maps "decay"/"no_decay" to the
    structured parameter names in each group (used by tests and logged at start)."""
    from ..data.transforms import parse_number
    cfg = dict(opt_cfg)
    name = cfg.get("name")
    if name not in OPTIMIZER_KEYS:
        raise ValueError(f"unknown optimizer '{name}'; accepted: {sorted(OPTIMIZER_KEYS)}")
    lr = build_lr(cfg.get("lr", 0.001), epochs, iters_per_epoch)
    wd = cfg.get("weight_decay")
    if wd is None and isinstance(cfg.get("regularizer"), dict):  # PaddleClas Momentum style
        wd = cfg["regularizer"].get("coeff", 0.0)
    wd = parse_number(wd or 0.0)
    decay, no_decay = split_weight_decay(model, cfg.get("no_weight_decay_name"),
                                         bool(cfg.get("one_dim_param_no_weight_decay", False)))
    groups = {"decay": [n for n, _ in decay], "no_decay": [n for n, _ in no_decay]}
    param_groups = [{"params": [p for _, p in decay], "weight_decay": wd}]
    if no_decay:
        param_groups.append({"params": [p for _, p in no_decay], "weight_decay": 0.0})
    clip = cfg.get("clip_norm")
    grad_clip = paddle.nn.ClipGradByGlobalNorm(parse_number(clip)) if clip else None
    multi_precision = bool(cfg.get("multi_precision", False))
    if name == "AdamW":
        amsgrad = bool(cfg.get("amsgrad", False))
        extra = {}
        if accepts_kwarg(paddle.optimizer.AdamW, "amsgrad"):
            extra["amsgrad"] = amsgrad
        elif amsgrad:  # Paddle 2.6's AdamW has no AMSGrad variant
            raise ValueError(f"Optimizer.amsgrad: True needs Paddle >= 3.0 (installed: {paddle.__version__})")
        opt = paddle.optimizer.AdamW(
            learning_rate=lr, beta1=parse_number(cfg.get("beta1", 0.9)),
            beta2=parse_number(cfg.get("beta2", 0.999)), epsilon=parse_number(cfg.get("epsilon", 1e-8)),
            parameters=param_groups, weight_decay=wd, grad_clip=grad_clip,
            multi_precision=multi_precision, **extra)
    else:
        for g in param_groups:  # Momentum applies coupled L2 decay
            g["weight_decay"] = paddle.regularizer.L2Decay(g["weight_decay"])
        opt = paddle.optimizer.Momentum(
            learning_rate=lr, momentum=parse_number(cfg.get("momentum", 0.9)),
            parameters=param_groups, use_nesterov=bool(cfg.get("use_nesterov", False)),
            grad_clip=grad_clip, multi_precision=multi_precision)
    return opt, lr, groups
