"""Token-labeling loss (Jiang et al. 2021, "All Tokens Matter", LV-ViT), pluggable.

MAFormer's headline ImageNet numbers (S 83.7, B 85.0, L 85.9) are trained with token labeling
(paper Sec. 4.2); without it MAFormer-S reaches 83.0. Token labeling needs **external data**:
a dense score map per training image produced by a teacher (LV-ViT used NFNet-F6 maps, stored as
top-k class ids and scores on a 14x14 grid). The data pipeline must crop / flip / resize those maps
together with the image (and mix them with MixToken), then pool them to the model's final token
grid (7x7 at 224). Nothing in this project ships those maps, so this loss is not wired into any
config; it is provided so that a user who has them can plug it in:

* build the model with ``token_label_head=True`` (adds ``aux_head``, a Linear(C4, K) applied to
  every final token);
* in the training step call ``cls_logits, token_logits = model.forward_token_label(images)``
  and ``TokenLabelCELoss()((cls_logits, token_logits), (cls_target, token_target))``;
* at inference ``model(images)`` already returns ``cls + 0.5 * max_over_tokens(aux)``.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["TokenLabelCELoss", "soft_target_cross_entropy"]


def soft_target_cross_entropy(logits, target):
    """Mean over leading dims of ``-sum(target * log_softmax(logits), -1)``."""
    return (-target * F.log_softmax(logits, axis=-1)).sum(axis=-1).mean()


class TokenLabelCELoss(nn.Layer):
    """``CE(cls_logits, cls_target) + aux_weight * mean_tokens CE(token_logits, token_target)``.

    Args:
        aux_weight: weight of the dense token loss (0.5 in LV-ViT and the MAFormer recipe).
        epsilon: label smoothing applied when a target is given as class ids (0.1 in LV-ViT).
        class_num: needed only when targets are ids.

    Inputs:
        x: ``(cls_logits [B, K], token_logits [B, N, K])`` from ``MAFormer.forward_token_label``.
        label: ``(cls_target, token_target)``; each either soft ``[B, K]`` / ``[B, N, K]``
            (e.g. after MixToken) or integer ids ``[B]`` / ``[B, N]``.

    Returns ``{"TokenLabelCELoss": loss}`` (PaddleClas loss convention).
    """

    def __init__(self, aux_weight=0.5, epsilon=0.1, class_num=None):
        super().__init__()
        self.aux_weight = float(aux_weight)
        self.epsilon = float(epsilon)
        self.class_num = class_num

    def _soft(self, target, logits):
        if target.dtype in (paddle.int32, paddle.int64):
            k = logits.shape[-1] if self.class_num is None else self.class_num
            one_hot = F.one_hot(target.astype("int64"), k)
            return one_hot * (1.0 - self.epsilon) + self.epsilon / k
        return target.astype(logits.dtype)

    def forward(self, x, label):
        cls_logits, token_logits = x
        cls_target, token_target = label
        loss = soft_target_cross_entropy(cls_logits, self._soft(cls_target, cls_logits))
        token_target = self._soft(token_target, token_logits)
        if token_target.shape[1] != token_logits.shape[1]:
            raise ValueError(f"token target has {token_target.shape[1]} tokens, the model "
                             f"{token_logits.shape[1]}: pool the label maps to the model's final grid")
        loss = loss + self.aux_weight * soft_target_cross_entropy(token_logits, token_target)
        return {"TokenLabelCELoss": loss}
