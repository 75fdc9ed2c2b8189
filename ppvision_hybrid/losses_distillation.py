"""Knowledge-distillation losses with PaddleClas's names and keys, for a ``DistillationModel``
whose forward returns ``{member name: logits}`` (see :mod:`ppvision_hybrid.engine.distillation`).

Each loss reads the members named in ``model_names`` (against the ground truth) or in
``model_name_pairs`` (``[student, teacher]``, the second acting as the target) and returns one
term per member or pair:

* ``DistillationGTCELoss`` -- cross entropy with the labels;
* ``DistillationCELoss`` -- cross entropy with the softmax of the second model (Hinton et al.
  2015 at temperature 1);
* ``DistillationKLDivLoss`` -- ``T^2 * KL(softmax(t/T) || softmax(s/T))`` (Hinton et al. 2015);
* ``DistillationDMLLoss`` -- symmetric KL between the two (deep mutual learning, Zhang et al.
  2018), scaled by the class count as in PaddleClas;
* ``DistillationDKDLoss`` -- decoupled KD (Zhao et al. 2022): target-class and non-target-class
  KL weighted by ``alpha`` and ``beta``;
* ``DistillationDISTLoss`` -- DIST (Huang et al. 2022): inter- and intra-class Pearson
  correlation of the probabilities;
* ``DistillationSKDLoss`` -- spherical KD (Guo et al. 2020): layer-normalised logits;
* ``DistillationWSLLoss`` -- weighted soft labels (Zhou et al. 2021);
* ``DistillationDistanceLoss`` -- L1 / L2 / smooth-L1 between the outputs (optionally after
  softmax or sigmoid).

``key`` picks an entry when a member returns a dict. Targets that are soft (Mixup/CutMix) are
reduced to their arg-max where a loss needs class ids.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .losses import CELoss, soft_cross_entropy

__all__ = ["DISTILLATION_LOSSES"]


def _pick(predicts, name, key):
    if not isinstance(predicts, dict) or name not in predicts:
        got = sorted(predicts) if isinstance(predicts, dict) else type(predicts).__name__
        raise ValueError(f"distillation loss needs the output of model '{name}' (a DistillationModel "
                         f"member); the model returned {got}")
    out = predicts[name]
    if key is None or (key == "logits" and not isinstance(out, dict)):
        return out  # these models return their logits
    if not isinstance(out, dict):
        raise ValueError(f"distillation loss key '{key}' names an intermediate output, but model '{name}' "
                         f"returns its logits only (feature outputs such as PaddleClas's return_patterns "
                         f"are not supported); use key: logits or no key")
    return out[key]


def _class_ids(label, logits_teacher, use_teacher):
    if use_teacher or label is None:
        return logits_teacher.argmax(axis=-1)
    if label.dtype not in (paddle.int32, paddle.int64):
        return label.argmax(axis=-1)
    return label.reshape([-1])


def _kl_sum(log_p, q):
    """sum(q * (log q - log_p)) over everything (``F.kl_div(..., reduction='sum')``)."""
    return F.kl_div(log_p, q, reduction="sum")


class _PairLoss(nn.Layer):
    """Applies ``self.pair_loss(student, teacher, label)`` to every ``[student, teacher]`` pair."""


    use_target_as_gt = False

    def __init__(self, model_name_pairs=(), key=None, name="loss"):
        super().__init__()
        pairs = [list(p) for p in (model_name_pairs or [])]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError(f"{type(self).__name__}.model_name_pairs must be a list of "
                             f"[student, teacher] pairs, got {model_name_pairs!r}")
        self.model_name_pairs = pairs
        self.key = key
        self.name = name

    def target_one_hot(self, label, student, teacher):
        """The labels (the teacher's arg-max with ``use_target_as_gt`` or without labels) as
        one-hot rows."""
        return F.one_hot(_class_ids(label, teacher, self.use_target_as_gt), student.shape[-1])

    def term_name(self, idx, first, second):
        return f"{self.name}_{first}_{second}"

    def forward(self, predicts, label=None):
        out = {}
        for idx, (first, second) in enumerate(self.model_name_pairs):
            out[self.term_name(idx, first, second)] = self.pair_loss(
                _pick(predicts, first, self.key), _pick(predicts, second, self.key), label)
        return out


class DistillationGTCELoss(CELoss):
    def __init__(self, model_names=(), epsilon=None, key=None, name="loss_gt_ce"):
        super().__init__(epsilon=epsilon)
        if not model_names:
            raise ValueError("DistillationGTCELoss.model_names must name at least one model")
        self.model_names, self.key, self.name = list(model_names), key, name

    def forward(self, predicts, label):
        return {f"CELoss_{n}": super(DistillationGTCELoss, self).forward(
            _pick(predicts, n, self.key), label)["CELoss"] for n in self.model_names}


class DistillationCELoss(_PairLoss):

    def __init__(self, model_name_pairs=(), epsilon=None, key=None, name="loss_ce"):
        super().__init__(model_name_pairs, key, "CELoss")
        self.smooth = CELoss(epsilon=epsilon)

    def pair_loss(self, student, teacher, label):
        return self.smooth(student, F.softmax(teacher.astype("float32"), axis=-1))["CELoss"]


class DistillationKLDivLoss(_PairLoss):

    def __init__(self, model_name_pairs=(), temperature=4, key=None, name="loss_kl"):
        super().__init__(model_name_pairs, key, "loss_kldiv")
        self.temperature = float(temperature)

    def pair_loss(self, student, teacher, label):
        t = self.temperature
        log_p = F.log_softmax(student / t, axis=1)
        return _kl_sum(log_p, F.softmax(teacher / t, axis=1)) * t * t / student.shape[0]


class DistillationDMLLoss(_PairLoss):

    def __init__(self, model_name_pairs=(), act="softmax", weight_ratio=False,
                 sum_across_class_dim=False, key=None, name="loss_dml"):
        super().__init__(model_name_pairs, key, "DMLLoss")
        if act not in (None, "softmax", "sigmoid"):
            raise ValueError(f"DistillationDMLLoss.act must be softmax, sigmoid or null, got {act!r}")
        if weight_ratio:
            raise ValueError("DistillationDMLLoss.weight_ratio is for multi-label training, which "
                             "is not supported")
        self.act = act
        self.sum_across_class_dim = bool(sum_across_class_dim)
        self.eps = 1e-12

    def term_name(self, idx, first, second):
        return f"DMLLoss_{first}_{second}_{idx}"

    def _kl(self, x, target):
        return target * paddle.log((target + self.eps) / (x + self.eps)) * x.shape[-1]

    def pair_loss(self, student, teacher, label):
        if self.act == "softmax":
            student, teacher = F.softmax(student, axis=-1), F.softmax(teacher, axis=-1)
        elif self.act == "sigmoid":
            student, teacher = F.sigmoid(student), F.sigmoid(teacher)
        loss = (self._kl(student, teacher) + self._kl(teacher, student)) / 2
        return loss.sum(1).mean() if self.sum_across_class_dim else loss.mean()


class DistillationDKDLoss(_PairLoss):

    def __init__(self, model_name_pairs=(), key=None, temperature=1.0, alpha=1.0, beta=1.0,
                 use_target_as_gt=False, name="loss_dkd"):
        super().__init__(model_name_pairs, key, name)
        self.temperature, self.alpha, self.beta = float(temperature), float(alpha), float(beta)
        self.use_target_as_gt = bool(use_target_as_gt)

    def pair_loss(self, student, teacher, label):
        t = self.temperature
        gt = self.target_one_hot(label, student, teacher)
        p_s, p_t = F.softmax(student / t, axis=1), F.softmax(teacher / t, axis=1)
        # target-class KD: the binary (target, rest) distributions
        bin_s = paddle.stack([(p_s * gt).sum(1), (p_s * (1 - gt)).sum(1)], axis=1)
        bin_t = paddle.stack([(p_t * gt).sum(1), (p_t * (1 - gt)).sum(1)], axis=1)
        tckd = _kl_sum(paddle.log(bin_s), bin_t) * t * t / student.shape[0]
        # non-target-class KD: distributions over the other classes only
        log_q_s = F.log_softmax(student / t - 1000.0 * gt, axis=1)
        q_t = F.softmax(teacher / t - 1000.0 * gt, axis=1)
        nckd = _kl_sum(log_q_s, q_t) * t * t / student.shape[0]
        return self.alpha * tckd + self.beta * nckd


def _pearson(a, b, eps=1e-8):
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(axis=1) * b.norm(axis=1) + eps)


class DistillationDISTLoss(_PairLoss):

    def __init__(self, model_name_pairs=(), key=None, beta=1.0, gamma=1.0, name="loss_dist"):
        super().__init__(model_name_pairs, key, name)
        self.beta, self.gamma = float(beta), float(gamma)

    def pair_loss(self, student, teacher, label):
        y_s, y_t = F.softmax(student, axis=-1), F.softmax(teacher, axis=-1)
        inter = 1 - _pearson(y_s, y_t).mean()
        intra = 1 - _pearson(y_s.transpose([1, 0]), y_t.transpose([1, 0])).mean()
        return self.beta * inter + self.gamma * intra


class DistillationSKDLoss(_PairLoss):

    def __init__(self, model_name_pairs=(), key=None, temperature=1.0, multiplier=2.0, alpha=0.9,
                 use_target_as_gt=False, name="skd_loss"):
        super().__init__(model_name_pairs, key, name)
        self.temperature, self.multiplier, self.alpha = float(temperature), float(multiplier), float(alpha)
        self.use_target_as_gt = bool(use_target_as_gt)

    def pair_loss(self, student, teacher, label):
        t = self.temperature
        gt = self.target_one_hot(label, student, teacher)
        s = F.layer_norm(student, student.shape[1:], epsilon=1e-7) * self.multiplier
        th = F.layer_norm(teacher, teacher.shape[1:], epsilon=1e-7) * self.multiplier
        kd = soft_cross_entropy(s / t, F.softmax(th / t, axis=-1)) * t * t
        ce = soft_cross_entropy(s, gt)
        return kd * self.alpha + ce * (1 - self.alpha)


class DistillationWSLLoss(_PairLoss):

    def __init__(self, model_name_pairs=(), key=None, temperature=2.0, name="wsl_loss"):
        super().__init__(model_name_pairs, key, name)
        self.temperature = float(temperature)

    def pair_loss(self, student, teacher, label):
        t = self.temperature
        gt = self.target_one_hot(label, student, teacher)
        ce_s = -(gt * F.log_softmax(student.detach(), axis=-1)).sum(1)
        ce_t = -(gt * F.log_softmax(teacher.detach(), axis=-1)).sum(1)
        weight = 1 - paddle.exp(-paddle.maximum(ce_s / (ce_t + 1e-7), paddle.zeros_like(ce_s)))
        kd = -(F.softmax(teacher / t, axis=-1) * F.log_softmax(student / t, axis=-1)).sum(1)
        return t * t * (kd * weight).mean()


class DistillationDistanceLoss(_PairLoss):

    def __init__(self, mode="l2", model_name_pairs=(), act=None, key=None, name="loss_", **kwargs):
        super().__init__(model_name_pairs, key, name + str(mode))
        losses = {"l1": nn.L1Loss, "l2": nn.MSELoss, "smooth_l1": nn.SmoothL1Loss}
        if mode not in losses:
            raise ValueError(f"DistillationDistanceLoss.mode must be one of {sorted(losses)}, got {mode!r}")
        if act not in (None, "softmax", "sigmoid"):
            raise ValueError(f"DistillationDistanceLoss.act must be softmax, sigmoid or null, got {act!r}")
        self.mode, self.act = mode, act
        self.loss_fn = losses[mode](**kwargs)

    def term_name(self, idx, first, second):
        return f"{self.name}_loss_{self.mode}_{idx}"

    def pair_loss(self, first, second, label):
        if self.act == "softmax":
            first, second = F.softmax(first, axis=-1), F.softmax(second, axis=-1)
        elif self.act == "sigmoid":
            first, second = F.sigmoid(first), F.sigmoid(second)
        return self.loss_fn(first, second)


DISTILLATION_LOSSES = {cls.__name__: cls for cls in (
    DistillationGTCELoss, DistillationCELoss, DistillationKLDivLoss, DistillationDMLLoss,
    DistillationDKDLoss, DistillationDISTLoss, DistillationSKDLoss, DistillationWSLLoss,
    DistillationDistanceLoss)}
