"""Classification losses with PaddleClas names (``Loss.Train: [{CELoss: {weight, epsilon}}]``)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["CELoss", "CombinedLoss", "LOSSES", "build_loss"]


class CELoss(nn.Layer):
    """Cross entropy with optional label smoothing ``epsilon``.

    Hard labels ``[B]`` / ``[B, 1]`` (int) or soft targets ``[B, K]`` (float, e.g. from
    Mixup/CutMix). With ``epsilon`` the target becomes ``(1 - eps) * target + eps / K`` for both.
    """

    def __init__(self, epsilon=None):
        super().__init__()
        if epsilon is not None and not 0.0 <= float(epsilon) < 1.0:
            raise ValueError(f"CELoss epsilon must be in [0, 1), got {epsilon}")
        self.epsilon = float(epsilon) if epsilon else 0.0

    def forward(self, logits, label):
        class_num = logits.shape[-1]
        if label.dtype in (paddle.int32, paddle.int64):
            label = label.reshape([-1])
            if self.epsilon == 0.0:
                return F.cross_entropy(logits, label, reduction="mean")
            target = F.one_hot(label, class_num)
        else:
            target = label.astype(logits.dtype)
        if self.epsilon > 0.0:
            target = target * (1.0 - self.epsilon) + self.epsilon / class_num
        log_prob = F.log_softmax(logits.astype("float32"), axis=-1)
        return -(target.astype("float32") * log_prob).sum(axis=-1).mean()


LOSSES = {"CELoss": CELoss}


class CombinedLoss(nn.Layer):
    """Weighted sum of the configured losses; returns a dict with each term and ``loss``."""

    def __init__(self, loss_list):
        super().__init__()
        self.names, self.weights = [], []
        self.losses = nn.LayerList()
        for item in loss_list:
            (name, kwargs), = item.items()
            kwargs = dict(kwargs or {})
            if name not in LOSSES:
                raise ValueError(f"unknown loss '{name}'; accepted: {sorted(LOSSES)}")
            self.weights.append(float(kwargs.pop("weight", 1.0)))
            self.names.append(name)
            self.losses.append(LOSSES[name](**kwargs))

    def forward(self, logits, label):
        out, total = {}, 0.0
        for name, w, loss_fn in zip(self.names, self.weights, self.losses):
            value = loss_fn(logits, label) * w
            out[name] = value
            total = total + value
        out["loss"] = total
        return out


def build_loss(loss_list):
    return CombinedLoss(loss_list) if loss_list else None
