"""Learning-rate schedules with PaddleClas's names, keys and meanings (``Optimizer.lr.name``):
Cosine, Linear, Step, MultiStepDecay, Piecewise, ConstLR and Constant.

PaddleClas builds each as a Paddle scheduler stepped once per optimizer update (per epoch with
``by_epoch: True``), wrapped in a linear warmup of ``round(warmup_epoch * steps_per_epoch)``
steps from ``warmup_start_lr`` to the base rate, after which the decay starts at its own step 0
(so decay boundaries count from the end of the warmup). A ``warmup_epoch >= epochs`` is cut to
``epochs`` with a warning. ``Piecewise`` with ``learning_rate`` ignores ``decay_epochs`` and
``values`` and decays 10x every 30 epochs (PaddleClas's rule, also with a warning).
``epochs`` and ``step_each_epoch`` in the section are overwritten by the engine, as there.

One scheduler class evaluates the closed form ``lr(step)``; its only state is the step counter,
so a resumed run continues at exactly the same rate.
"""
import math
import warnings

from paddle.optimizer.lr import LRScheduler

__all__ = ["EpochScheduler", "build_lr", "LR_SCHEDULES", "LR_KEYS"]

_BOOKKEEPING = ("name", "epochs", "step_each_epoch", "last_epoch", "by_epoch")
_WARMUP = ("warmup_epoch", "warmup_start_lr")
#: accepted keys per schedule (the config validator reads this)
LR_KEYS = {
    "Cosine": _BOOKKEEPING + _WARMUP + ("learning_rate", "eta_min"),
    "Linear": _BOOKKEEPING + _WARMUP + ("learning_rate", "end_lr", "power", "cycle"),
    "Step": _BOOKKEEPING + _WARMUP + ("learning_rate", "step_size", "gamma"),
    "MultiStepDecay": _BOOKKEEPING + _WARMUP + ("learning_rate", "milestones", "gamma"),
    "Piecewise": _BOOKKEEPING + _WARMUP + ("decay_epochs", "values", "learning_rate"),
    "ConstLR": _BOOKKEEPING + _WARMUP + ("learning_rate",),
    "Constant": ("name", "epochs", "step_each_epoch", "last_epoch", "learning_rate"),
}
LR_SCHEDULES = tuple(LR_KEYS)


class EpochScheduler(LRScheduler):
    """``lr(t)``: linear warmup over ``warmup_steps`` from ``warmup_start_lr`` to ``base_lr``, then
    ``decay_fn(t - warmup_steps)``. ``t`` counts optimizer updates, or whole epochs when
    ``by_epoch`` (``step()`` is still called once per update)."""

    def __init__(self, decay_fn, base_lr, iters_per_epoch, warmup_steps=0, warmup_start_lr=0.0,
                 by_epoch=False):
        self.decay_fn = decay_fn
        self.base_lr = float(base_lr)
        self.iters_per_epoch = max(1, int(iters_per_epoch))
        self.warmup_steps = int(warmup_steps)
        self.warmup_start_lr = float(warmup_start_lr or 0.0)
        self.by_epoch = bool(by_epoch)
        super().__init__(learning_rate=self.base_lr, last_epoch=-1)

    def lr_at(self, iteration):
        t = iteration // self.iters_per_epoch if self.by_epoch else iteration
        if t < self.warmup_steps:
            return self.warmup_start_lr + (self.base_lr - self.warmup_start_lr) * t / self.warmup_steps
        return self.decay_fn(t - self.warmup_steps)

    def get_lr(self):
        return self.lr_at(max(self.last_epoch, 0))


def build_lr(lr_cfg, epochs, iters_per_epoch):
    """Nested ``lr:`` mapping (or a bare number for a constant rate) -> :class:`EpochScheduler`.
    ``iters_per_epoch`` counts optimizer updates per epoch."""
    from ..data.transforms import parse_number
    if not isinstance(lr_cfg, dict):
        lr_cfg = {"name": "Constant", "learning_rate": lr_cfg}
    cfg = dict(lr_cfg)
    name = cfg.get("name", "Constant")
    if name not in LR_KEYS:
        raise ValueError(f"unknown lr schedule '{name}'; accepted: {list(LR_SCHEDULES)}")
    epochs = int(epochs)
    steps = max(1, int(iters_per_epoch))
    by_epoch = bool(cfg.get("by_epoch", False))
    per_epoch = 1 if by_epoch else steps  # scheduler steps per epoch
    warmup_epoch = parse_number(cfg.get("warmup_epoch", 0) or 0)
    if warmup_epoch >= epochs and warmup_epoch > 0:
        warnings.warn(f"Optimizer.lr.warmup_epoch ({warmup_epoch:g}) >= Global.epochs ({epochs}): "
                      f"warmup cut to {epochs} epochs, as in PaddleClas")
        warmup_epoch = float(epochs)
    warmup_steps = int(warmup_epoch) if by_epoch else int(round(warmup_epoch * steps))
    warmup_start = parse_number(cfg.get("warmup_start_lr", 0.0) or 0.0)
    decay_steps = (epochs - warmup_epoch) * per_epoch  # what remains after warmup

    if name == "Piecewise" and cfg.get("learning_rate"):
        base = parse_number(cfg["learning_rate"])
        bounds = list(range(0, epochs, 30))
        values = [base * 0.1 ** i for i in range(len(bounds))]
        bounds, values = ([epochs], [values[0]] * 2) if len(bounds) == 1 else (bounds[1:], values)
        warnings.warn(f"Optimizer.lr: Piecewise with learning_rate decays 10x every 30 epochs "
                      f"(PaddleClas's rule): decay_epochs {bounds}, values {values}")
        cfg["decay_epochs"], cfg["values"] = bounds, values

    if name in ("Cosine", "Linear", "Step", "MultiStepDecay", "ConstLR", "Constant"):
        if cfg.get("learning_rate") is None:
            raise ValueError(f"Optimizer.lr.learning_rate is required for {name}")
        base = parse_number(cfg["learning_rate"])
    if name == "Cosine":
        eta_min = parse_number(cfg.get("eta_min", 0.0) or 0.0)
        t_max = int(decay_steps) if by_epoch else decay_steps

        def decay(t):
            if t_max <= 0:
                return base
            return eta_min + (base - eta_min) * 0.5 * (1.0 + math.cos(math.pi * min(t, t_max) / t_max))
    elif name == "Linear":
        end_lr = parse_number(cfg.get("end_lr", 0.0) or 0.0)
        power = parse_number(cfg.get("power", 1.0))
        cycle = bool(cfg.get("cycle", False))

        def decay(t):
            if decay_steps <= 0:
                return base
            span = decay_steps
            if cycle:
                span = decay_steps * max(1, math.ceil(t / decay_steps))
            t = min(t, span)
            return (base - end_lr) * (1 - t / span) ** power + end_lr
    elif name == "Step":
        gamma = parse_number(cfg.get("gamma", 0.1))
        step_size = parse_number(cfg["step_size"])
        size = max(1, int(step_size if by_epoch else step_size * steps))

        def decay(t):
            return base * gamma ** (t // size)
    elif name == "MultiStepDecay":
        gamma = parse_number(cfg.get("gamma", 0.1))
        milestones = [parse_number(m) * per_epoch for m in cfg["milestones"]]

        def decay(t):
            return base * gamma ** sum(t >= m for m in milestones)
    elif name == "Piecewise":
        if "decay_epochs" not in cfg or "values" not in cfg:
            raise ValueError("Optimizer.lr: Piecewise needs decay_epochs and values (or learning_rate)")
        boundaries = [parse_number(b) * per_epoch for b in cfg["decay_epochs"]]
        values = [parse_number(v) for v in cfg["values"]]
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"Piecewise needs len(values) == len(decay_epochs) + 1, got "
                             f"{len(values)} values for {len(boundaries)} boundaries")
        base = values[0]

        def decay(t):
            return values[sum(t >= b for b in boundaries)]
    else:  # ConstLR, Constant (PaddleClas's Constant has no warmup)
        def decay(t):
            return base
        if name == "Constant":
            warmup_steps = 0
    return EpochScheduler(decay, base, steps, warmup_steps, warmup_start, by_epoch)
