"""Batch-level augmentation: Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019), chosen per
batch by :class:`OpSampler`. They turn integer labels into soft targets ``[B, class_num]``:
``lam * onehot(y) + (1 - lam) * onehot(y[perm])``, where for CutMix ``lam`` is the exact
fraction of the image that was *not* pasted over (after clipping the box to the image).
"""
import random
import warnings

import numpy as np

__all__ = ["MixupOperator", "CutmixOperator", "OpSampler", "BATCH_OPS", "build_batch_ops"]


def _one_hot(labels, class_num):
    out = np.zeros((len(labels), class_num), np.float32)
    out[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
    return out


class _MixBase:
    def __init__(self, class_num=None, alpha=1.0, prob=1.0):
        if alpha <= 0:
            raise ValueError(f"{type(self).__name__}: alpha must be > 0, got {alpha}")
        self.class_num = class_num
        self.alpha = float(alpha)
        self.prob = float(prob)  # used by OpSampler as the selection weight

    def _check(self, labels):
        if self.class_num is None:
            raise ValueError(f"{type(self).__name__} needs class_num (the engine sets it from Arch.class_num)")
        labels = np.asarray(labels).reshape(-1)
        return labels

    def mix(self, images, labels, lam, perm):
        raise NotImplementedError

    def __call__(self, images, labels):
        """``images`` float array [B, C, H, W], ``labels`` ints [B] -> (images, soft [B, K])."""
        labels = self._check(labels)
        lam = float(np.random.beta(self.alpha, self.alpha))
        perm = np.random.permutation(len(labels))
        return self.mix(images, labels, lam, perm)


class MixupOperator(_MixBase):
    def mix(self, images, labels, lam, perm):
        mixed = (lam * images + (1.0 - lam) * images[perm]).astype(images.dtype)
        onehot = _one_hot(labels, self.class_num)
        return mixed, lam * onehot + (1.0 - lam) * onehot[perm]


class CutmixOperator(_MixBase):
    def __init__(self, class_num=None, alpha=0.2, prob=1.0):
        super().__init__(class_num, alpha, prob)

    @staticmethod
    def cut_box(h, w, lam):
        cut_ratio = np.sqrt(1.0 - lam)
        ch, cw = int(h * cut_ratio), int(w * cut_ratio)
        cy, cx = np.random.randint(h), np.random.randint(w)
        y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
        x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
        return int(y1), int(y2), int(x1), int(x2)

    def mix(self, images, labels, lam, perm):
        h, w = images.shape[-2:]
        y1, y2, x1, x2 = self.cut_box(h, w, lam)
        mixed = images.copy()
        mixed[..., y1:y2, x1:x2] = images[perm][..., y1:y2, x1:x2]
        lam = 1.0 - (y2 - y1) * (x2 - x1) / float(h * w)  # the area actually kept
        onehot = _one_hot(labels, self.class_num)
        return mixed, lam * onehot + (1.0 - lam) * onehot[perm]


class OpSampler:
    """Pick one of the configured ops per batch with probability ``prob``; when the
    probabilities sum to less than 1 the remainder leaves the batch unmixed (labels still become
    one-hot so every batch has the same label layout). An op without ``prob`` gets 0, with a
    warning, as in PaddleClas."""

    def __init__(self, class_num=None, **ops):
        if not ops:
            raise ValueError("OpSampler needs at least one of " + ", ".join(BATCH_OPS))
        self.class_num = class_num
        self.ops, self.probs = [], []
        for name, kwargs in ops.items():
            if name not in BATCH_OPS:
                raise ValueError(f"unknown batch op '{name}' under OpSampler; accepted: {sorted(BATCH_OPS)}")
            kwargs = dict(kwargs or {})
            if "prob" not in kwargs:
                warnings.warn(f"OpSampler.{name} has no 'prob': it is never picked (prob 0), as "
                              f"in PaddleClas")
                kwargs["prob"] = 0.0
            op = BATCH_OPS[name](class_num=class_num, **kwargs)
            self.ops.append(op)
            self.probs.append(op.prob)
        total = sum(self.probs)
        if total > 1.0 + 1e-6:
            raise ValueError(f"OpSampler probabilities sum to {total} > 1")

    def __call__(self, images, labels):
        r, acc = random.random(), 0.0
        for op, p in zip(self.ops, self.probs):
            acc += p
            if r < acc:
                return op(images, labels)
        labels = np.asarray(labels).reshape(-1)
        return images, _one_hot(labels, self.class_num)


BATCH_OPS = {"MixupOperator": MixupOperator, "CutmixOperator": CutmixOperator}


def build_batch_ops(op_list, class_num):
    """``[{OpSampler: {...}}]`` or ``[{MixupOperator: {...}}]`` -> list of callables."""
    ops = []
    for item in op_list or []:
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError(f"each batch op must be a one-key mapping, got {item!r}")
        (name, kwargs), = item.items()
        if name == "OpSampler":
            ops.append(OpSampler(class_num=class_num, **(kwargs or {})))
        elif name in BATCH_OPS:
            ops.append(BATCH_OPS[name](class_num=class_num, **(kwargs or {})))
        else:
            raise ValueError(f"unknown batch op '{name}'; accepted: {sorted(BATCH_OPS) + ['OpSampler']}")
    return ops
