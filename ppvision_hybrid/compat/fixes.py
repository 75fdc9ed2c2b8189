"""The six fixes, each written here from the failure it addresses (docs/dense.md lists them).

Every fix is a function returning a list of :class:`Patch` objects; nothing is changed until
:func:`ppvision_hybrid.compat.apply_fixes` applies them.
"""
import importlib

import numpy as np
import paddle
from paddle import _C_ops

from ._patching import Patch, PaddleNamespace

_ORIGINAL_CONCAT = paddle.concat


# --------------------------------------------------------------------------------------------
# 1. concat of 0-d tensors
# --------------------------------------------------------------------------------------------
def _is_0d(t):
    return hasattr(t, "ndim") and not isinstance(t, np.ndarray) and t.ndim == 0


@paddle.jit.not_to_static
def concat_lifting_0d(x, axis=0, name=None):
    """``paddle.concat`` that treats 0-d tensors as 1-element vectors.

    Since Paddle 2.5 ``paddle.shape(x)[0]``, ``t[i]`` and ``paddle.sum(t)`` are 0-d; the
    toolkits collect such scalars in a list and concatenate them, which Paddle 3 rejects
    ("The axis is expected to be in range of [0, 0)"). Under ``to_static`` the list becomes a
    tensor array whose element shape is ``[]``: stack it instead of concatenating.
    Inputs without 0-d tensors go to ``paddle.concat`` unchanged.
    """
    if isinstance(x, (list, tuple)):
        if any(_is_0d(t) for t in x):
            x = [paddle.reshape(t, [1]) if _is_0d(t) else t for t in x]
    elif (isinstance(x, paddle.pir.Value) and x.is_dense_tensor_array_type()
          and len(x.shape) == 0):
        out, _ = _C_ops.array_to_tensor(x, axis, True)
        return out
    return _ORIGINAL_CONCAT(x, axis=axis, name=name)


#: toolkit modules that concatenate 0-d tensors (measured sites).
CONCAT_0D_MODULES = {
    "ppdet": ["ppdet.modeling.proposal_generator.rpn_head",
              "ppdet.modeling.proposal_generator.target",
              "ppdet.modeling.heads.cascade_head",
              "ppdet.modeling.post_process"],
    "paddleseg": ["paddleseg.utils.metrics"],
}


def fix_concat_0d(toolkit):
    namespace = PaddleNamespace({"concat": concat_lifting_0d})
    return [Patch(importlib.import_module(m), "paddle", namespace)
            for m in CONCAT_0D_MODULES[toolkit]]


# --------------------------------------------------------------------------------------------
# 2. ppdet export: to_static without main_program / input pruning
# --------------------------------------------------------------------------------------------
def fix_det_export_full_graph():
    """``Trainer._get_infer_cfg_and_input_spec`` prunes the input spec through
    ``static_model.forward.main_program``, which Paddle 3's default (partial graph) ``to_static``
    does not have. We let the toolkit write infer_cfg.yml and build the spec with
    ``prune_input=False`` and convert the model ourselves with ``full_graph=True``; jit.save
    then keeps all three inputs (image, im_shape, scale_factor), as Paddle Inference expects."""
    from ppdet.engine import trainer as trainer_module
    trainer_cls = trainer_module.Trainer
    original = trainer_cls.__dict__["_get_infer_cfg_and_input_spec"]

    def _get_infer_cfg_and_input_spec(self, save_dir, prune_input=True, kl_quant=False, **kwargs):
        _, input_spec = original(self, save_dir, prune_input=False, kl_quant=kl_quant, **kwargs)
        model = kwargs.get("model") or self.model
        static_model = paddle.jit.to_static(model, input_spec=input_spec, full_graph=True)
        return static_model, input_spec

    _get_infer_cfg_and_input_spec.__wrapped__ = original
    return [Patch(trainer_cls, "_get_infer_cfg_and_input_spec", _get_infer_cfg_and_input_spec)]


# --------------------------------------------------------------------------------------------
# 3. multiclass NMS through the PHI op (works in dygraph and in PIR programs)
# --------------------------------------------------------------------------------------------
def multiclass_nms_phi(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold=0.3,
                       normalized=True, nms_eta=1., background_label=-1, return_index=False,
                       return_rois_num=True, rois_num=None, name=None):
    """Same contract as ``ppdet.modeling.ops.multiclass_nms`` -> (out, nms_rois_num, index).

    The toolkit builds the op with the legacy ``LayerHelper.append_op`` outside dygraph, which
    a PIR program rejects; ``_C_ops.multiclass_nms3`` is the same kernel in both modes."""
    out, index, nms_rois_num = _C_ops.multiclass_nms3(
        bboxes, scores, rois_num, float(score_threshold), int(nms_top_k), int(keep_top_k),
        float(nms_threshold), bool(normalized), float(nms_eta), int(background_label))
    out.stop_gradient = True
    index.stop_gradient = True
    return out, (nms_rois_num if return_rois_num else None), (index if return_index else None)


def fix_multiclass_nms_pir():
    from ppdet.modeling import ops
    return [Patch(ops, "multiclass_nms", multiclass_nms_phi)]


# --------------------------------------------------------------------------------------------
# 4. BBoxPostProcess.get_pred without data-dependent branches
# --------------------------------------------------------------------------------------------
def get_pred_branch_free(self, bboxes, bbox_num, im_shape, scale_factor):
    """Rescale NMS output to the original image, clip, and mark empty boxes with label -1.

    The toolkit inserts a dummy box ``[0, 0, 0, 0, 1, 1]`` for an image without detections
    using ``if bbox_num[i] == 0`` whose branches yield counts of different rank, which static
    export rejects. Here every image gets ``max(n_i, 1)`` rows gathered from the NMS output with
    the dummy row appended at its end, so the result is identical and needs no branch.
    Returns (bboxes with dummies, prediction [N, 6], per-image counts)."""
    if getattr(self, "export_eb", False) or getattr(self, "export_onnx", False):
        return self.__ppvh_original_get_pred__(bboxes, bbox_num, im_shape, scale_factor)
    counts = paddle.cast(bbox_num, "int64").reshape([-1])
    out_counts = paddle.maximum(counts, paddle.ones_like(counts))
    out_end = paddle.cumsum(out_counts)
    out_start = out_end - out_counts
    in_start = paddle.cumsum(counts) - counts
    total = paddle.sum(out_counts)
    rows = paddle.arange(total, dtype="int64")
    image_of_row = paddle.searchsorted(out_end, rows, right=True)
    local = rows - paddle.gather(out_start, image_of_row)
    dummy_index = paddle.full_like(rows, paddle.shape(bboxes)[0].astype("int64"))
    source = paddle.where(paddle.gather(counts, image_of_row) > 0,
                          paddle.gather(in_start, image_of_row) + local, dummy_index)
    dummy = paddle.to_tensor(np.array([[0., 0., 0., 0., 1., 1.]], dtype="float32"))
    padded = paddle.gather(paddle.concat([bboxes.astype("float32"), dummy]), source)

    origin_shape = paddle.floor(im_shape / scale_factor + 0.5)  # per image (h, w)
    self.origin_shape_list = paddle.gather(origin_shape, image_of_row)
    scale_yx = paddle.gather(scale_factor, image_of_row)
    scale_xyxy = paddle.concat([scale_yx[:, 1:2], scale_yx[:, 0:1]] * 2, axis=1)

    box = padded[:, 2:] / scale_xyxy
    limit = paddle.concat([self.origin_shape_list[:, 1:2], self.origin_shape_list[:, 0:1]] * 2,
                          axis=1)
    box = paddle.clip(paddle.minimum(box, limit), min=0.)
    nonempty = paddle.logical_and(box[:, 2:3] > box[:, 0:1], box[:, 3:4] > box[:, 1:2])
    label = paddle.where(nonempty, padded[:, 0:1], paddle.full_like(padded[:, 0:1], -1.))
    pred = paddle.concat([label, padded[:, 1:2], box], axis=1)
    return padded, pred, paddle.cast(out_counts, bbox_num.dtype)


def fix_bbox_post_branch_free():
    from ppdet.modeling.post_process import BBoxPostProcess
    original = BBoxPostProcess.__dict__["get_pred"]
    return [Patch(BBoxPostProcess, "__ppvh_original_get_pred__", original),
            Patch(BBoxPostProcess, "get_pred", get_pred_branch_free)]


# --------------------------------------------------------------------------------------------
# 5. paddleseg CrossEntropyLoss: no implicit int64 * float32 promotion in Paddle 3
# --------------------------------------------------------------------------------------------
def post_process_loss_float(self, logit, label, semantic_weights, loss):
    """Masked (and optionally class-weighted / top-k) average of the per-pixel loss.

    The toolkit multiplies the float mask with an int64 tensor (``ones_like(label)`` or the
    label itself), which Paddle 3 no longer promotes; every factor here is float32."""
    label.stop_gradient = True
    valid = label != self.ignore_index
    mask = paddle.cast(valid, "float32") if self.avg_non_ignore else paddle.ones(label.shape,
                                                                                  "float32")
    mask.stop_gradient = True
    if loss.ndim > mask.ndim:
        loss = paddle.squeeze(loss, axis=-1)
    loss = loss * mask
    if semantic_weights is not None:
        loss = loss * semantic_weights
    if self.weight is not None:
        safe_label = paddle.where(valid, label, paddle.zeros_like(label)) if self.avg_non_ignore \
            else label
        coef = paddle.sum(paddle.nn.functional.one_hot(safe_label, logit.shape[-1]) * self.weight,
                          axis=-1)
    else:
        coef = paddle.ones(label.shape, "float32")
    coef.stop_gradient = True
    if self.top_k_percent_pixels == 1.0:
        return paddle.mean(loss) / (paddle.mean(mask * coef) + self.EPS)
    flat = loss.reshape((-1,))
    top_loss, indices = paddle.topk(flat, int(self.top_k_percent_pixels * flat.numel()))
    return top_loss.mean() / (paddle.mean(paddle.gather(coef.reshape((-1,)), indices)) + self.EPS)


def fix_seg_ce_float():
    from paddleseg.models.losses.cross_entropy_loss import CrossEntropyLoss
    return [Patch(CrossEntropyLoss, "_post_process_loss", post_process_loss_float)]


# --------------------------------------------------------------------------------------------
# 6. paddleseg core.train: losses of shape [1]
# --------------------------------------------------------------------------------------------
def fix_seg_train_loss_shape():
    """``core.train`` logs ``l[0]`` of each loss's numpy array; Paddle 3 losses are 0-d. The
    loss list is produced by ``train.loss_computation``; we return each loss as shape [1]."""
    train_module = importlib.import_module("paddleseg.core.train")
    original = train_module.__dict__["loss_computation"]

    def loss_computation(*args, **kwargs):
        return [paddle.reshape(l, [1]) if l.ndim == 0 else l for l in original(*args, **kwargs)]

    loss_computation.__wrapped__ = original
    return [Patch(train_module, "loss_computation", loss_computation)]
