"""Classification losses with PaddleClas names (``Loss.Train: [{CELoss: {weight, epsilon}}]``).

Each loss returns a dict of named terms (PaddleClas's convention); :class:`CombinedLoss` scales
every term by its entry's ``weight`` and adds them up as ``loss``. The knowledge-distillation
losses (``Distillation*``) are in :mod:`.losses_distillation`; losses PaddleClas has that need
what our models do not produce are refused by name (:data:`REFUSED_LOSSES`).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["CELoss", "CombinedLoss", "LOSSES", "REFUSED_LOSSES", "build_loss", "soft_cross_entropy"]


def soft_cross_entropy(logits, target, reduction="mean"):
    """``-sum(target * log_softmax(logits), -1)`` per sample, reduced."""
    loss = -(target.astype("float32") * F.log_softmax(logits.astype("float32"), axis=-1)).sum(axis=-1)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


class CELoss(nn.Layer):
    """Cross entropy with optional label smoothing ``epsilon`` (outside (0, 1) means none, as in
    PaddleClas).

    Hard labels ``[B]`` / ``[B, 1]`` (int) or soft targets ``[B, K]`` (float, e.g. from
    Mixup/CutMix, used as given). With ``epsilon`` the target becomes
    ``(1 - eps) * target + eps / K``. A dict prediction uses its ``logits`` entry.
    """

    def __init__(self, epsilon=None, reduction="mean"):
        super().__init__()
        if epsilon is not None and not 0.0 <= float(epsilon) < 1.0:
            raise ValueError(f"CELoss epsilon must be in [0, 1), got {epsilon}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"CELoss reduction must be mean, sum or none, got {reduction!r}")
        self.epsilon = float(epsilon) if epsilon else 0.0
        self.reduction = reduction

    def forward(self, logits, label):
        if isinstance(logits, dict):
            logits = logits["logits"]
        class_num = logits.shape[-1]
        if label.dtype in (paddle.int32, paddle.int64):
            label = label.reshape([-1])
            if self.epsilon == 0.0:
                return {"CELoss": F.cross_entropy(logits.astype("float32"), label, reduction=self.reduction)}
            target = F.one_hot(label, class_num)
        else:
            target = label.astype("float32")
        if self.epsilon > 0.0:
            target = target * (1.0 - self.epsilon) + self.epsilon / class_num
        return {"CELoss": soft_cross_entropy(logits, target, self.reduction)}


LOSSES = {"CELoss": CELoss}

#: PaddleClas losses that are refused, with the reason given to the user
REFUSED_LOSSES = {
    "GoogLeNetLoss": "it is GoogLeNet's loss over three auxiliary heads; these models have one head",
    "AFDLoss": "attention-based feature distillation needs intermediate feature maps and "
               "connector layers, which this engine does not wire",
    "DistillationPairLoss": "feature-pair distillation (MGD, PEFD) needs intermediate feature "
                            "maps, which this engine does not wire",
    "DistillationRKDLoss": "relational distillation needs embedding features, which this engine "
                           "does not wire",
    "DistillationMultiLabelLoss": "multi-label training is not supported",
    "MultiLabelLoss": "multi-label training is not supported",
}


class CombinedLoss(nn.Layer):
    """Weighted sum of the configured losses; returns each weighted term and ``loss``."""

    def __init__(self, loss_list):
        super().__init__()
        self.weights = []
        self.losses = nn.LayerList()
        for item in loss_list:
            (name, kwargs), = item.items()
            kwargs = dict(kwargs or {})
            if name in REFUSED_LOSSES:
                raise ValueError(f"loss '{name}' is not supported: {REFUSED_LOSSES[name]}")
            if name not in LOSSES:
                raise ValueError(f"unknown loss '{name}'; accepted: {sorted(LOSSES)}")
            self.weights.append(float(kwargs.pop("weight", 1.0)))
            self.losses.append(LOSSES[name](**kwargs))

    def forward(self, predictions, label):
        out, total = {}, 0.0
        for weight, loss_fn in zip(self.weights, self.losses):
            for key, value in loss_fn(predictions, label).items():
                out[key] = value * weight
                total = total + out[key]
        out["loss"] = total
        return out


def build_loss(loss_list):
    return CombinedLoss(loss_list) if loss_list else None


from .losses_distillation import DISTILLATION_LOSSES  # noqa: E402  (they build on CELoss)

LOSSES.update(DISTILLATION_LOSSES)
