"""Learning-rate schedules with PaddleClas names (``Optimizer.lr.name``): Cosine, Step,
Piecewise and Constant, each with an optional linear warmup measured in epochs.

One scheduler class evaluates a closed-form ``lr(epoch_position)`` at every iteration, where
``epoch_position = iteration / iters_per_epoch`` (or its floor with ``by_epoch: True``). The only
state is the iteration counter, so a resumed run continues at exactly the same LR.
"""
import math

from paddle.optimizer.lr import LRScheduler

__all__ = ["EpochScheduler", "build_lr", "LR_SCHEDULES", "LR_KEYS"]

_COMMON = ("name", "learning_rate", "warmup_epoch", "warmup_start_lr", "by_epoch", "last_epoch")
#: accepted keys per schedule (the config validator reads this)
LR_KEYS = {
    "Cosine": _COMMON + ("eta_min",),
    "Step": _COMMON + ("step_size", "gamma"),
    "Piecewise": ("name", "decay_epochs", "values", "warmup_epoch", "warmup_start_lr", "by_epoch",
                  "last_epoch"),
    "Constant": _COMMON,
}
LR_SCHEDULES = tuple(LR_KEYS)


class EpochScheduler(LRScheduler):
    """``lr = warmup(e)`` for ``e < warmup_epoch`` (linear from ``warmup_start_lr`` to the base),
    then ``decay(e - warmup_epoch)``. ``step()`` is called once per iteration."""

    def __init__(self, decay_fn, base_lr, iters_per_epoch, warmup_epoch=0, warmup_start_lr=0.0,
                 by_epoch=False):
        self.decay_fn = decay_fn
        self.base_lr = float(base_lr)
        self.iters_per_epoch = max(1, int(iters_per_epoch))
        self.warmup_epoch = float(warmup_epoch or 0)
        self.warmup_start_lr = float(warmup_start_lr or 0.0)
        self.by_epoch = bool(by_epoch)
        super().__init__(learning_rate=self.base_lr, last_epoch=-1)

    def lr_at(self, iteration):
        pos = iteration / self.iters_per_epoch
        if self.by_epoch:
            pos = math.floor(pos)
        if pos < self.warmup_epoch:
            # warmup counts iterations when per-iteration, epochs when by_epoch
            frac = pos / self.warmup_epoch
            return self.warmup_start_lr + (self.base_lr - self.warmup_start_lr) * frac
        return self.decay_fn(pos - self.warmup_epoch)

    def get_lr(self):
        return self.lr_at(max(self.last_epoch, 0))


def build_lr(lr_cfg, epochs, iters_per_epoch):
    """Nested ``lr:`` mapping (or a bare number for a constant LR) -> :class:`EpochScheduler`."""
    from ..data.transforms import parse_number
    if not isinstance(lr_cfg, dict):
        lr_cfg = {"name": "Constant", "learning_rate": lr_cfg}
    cfg = dict(lr_cfg)
    name = cfg.get("name", "Constant")
    if name not in LR_KEYS:
        raise ValueError(f"unknown lr schedule '{name}'; accepted: {list(LR_SCHEDULES)}")
    warmup = parse_number(cfg.get("warmup_epoch", 0) or 0)
    warmup_start = parse_number(cfg.get("warmup_start_lr", 0.0) or 0.0)
    decay_epochs = max(float(epochs) - warmup, 1e-12)
    if name == "Cosine":
        base, eta_min = parse_number(cfg["learning_rate"]), parse_number(cfg.get("eta_min", 0.0) or 0.0)

        def decay(e):
            return eta_min + (base - eta_min) * 0.5 * (1.0 + math.cos(math.pi * min(e, decay_epochs) / decay_epochs))
    elif name == "Step":
        base, gamma = parse_number(cfg["learning_rate"]), parse_number(cfg.get("gamma", 0.1))
        step_size = parse_number(cfg["step_size"])

        def decay(e):
            return base * gamma ** math.floor(e / step_size)
    elif name == "Piecewise":
        boundaries = [float(b) for b in cfg["decay_epochs"]]
        values = [parse_number(v) for v in cfg["values"]]
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"Piecewise needs len(values) == len(decay_epochs) + 1, got "
                             f"{len(values)} values for {len(boundaries)} boundaries")
        base = values[0]

        def decay(e):
            # boundaries count from the start of training, as in PaddleClas
            e_abs = e + warmup
            return values[sum(e_abs >= b for b in boundaries)]
    else:
        base = parse_number(cfg["learning_rate"])

        def decay(e):
            return base
    return EpochScheduler(decay, base, iters_per_epoch, warmup, warmup_start, cfg.get("by_epoch", False))
