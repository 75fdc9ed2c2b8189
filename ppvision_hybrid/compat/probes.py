"""One probe per fix: a tiny call on the imported toolkit code that fails on the broken code.

A probe returns True (the bug is there: patch), False (the code works: leave it alone) or raises
:class:`ProbeUndecided` (something else happened: neither the known failure nor the toolkit's
correct result). Probes look the toolkit code up when they run, so whatever ``ppdet`` /
``paddleseg`` is imported — the PyPI wheel, a source checkout, a fork — is what they test.
"""
import contextlib
import io
import logging
import tempfile

import numpy as np
import paddle

__all__ = ["ProbeUndecided", "PROBES", "run_probe"]


class ProbeUndecided(RuntimeError):
    """A probe saw neither the known failure nor the toolkit's correct result."""


def _bug_or_result(call, signature, check):
    """True when ``call()`` raises with one of the ``signature`` strings in its message, False
    when it returns a result that ``check`` accepts; anything else is undecided."""
    try:
        result = call()
    except Exception as err:  # noqa: BLE001 - classified below, re-raised as undecided
        text = f"{type(err).__name__}: {err}"
        if any(s in text for s in signature):
            return True
        raise ProbeUndecided(text.strip().splitlines()[-1][:400]) from err
    problem = check(result)
    if problem:
        raise ProbeUndecided(f"the call returned a wrong result: {problem}")
    return False


def _differs(got, want):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-5):
        return f"got {got.tolist()}, expected {want.tolist()}"
    return None


_CONCAT_0D = ("axis is expected to be in range",)


# ---- 1. concat of 0-d tensors -------------------------------------------------------------------
def probe_concat_0d_ppdet():
    """``CascadeHead._get_rois_from_boxes`` on two images (2 and 1 boxes): per-image counts are
    concatenated from 0-d ``paddle.shape(r)[0]``."""
    from ppdet.modeling.heads.cascade_head import CascadeHead

    class Head:  # the method reads only self.training
        training = False

    boxes = [paddle.to_tensor(np.array([[0, 0, 5, 5], [1, 1, 9, 9]], "float32")),
             paddle.to_tensor(np.array([[2, 2, 4, 4]], "float32"))]
    im_shape = paddle.to_tensor(np.array([[10, 10], [10, 10]], "float32"))
    return _bug_or_result(lambda: CascadeHead._get_rois_from_boxes(Head(), boxes, im_shape),
                          _CONCAT_0D, lambda out: _differs(out[1].numpy(), [2, 1]))


def probe_concat_0d_paddleseg():
    """``paddleseg.utils.metrics.calculate_area`` on a 2x2 prediction: per-class areas are 0-d
    sums that it concatenates."""
    from paddleseg.utils import metrics
    pred = paddle.to_tensor(np.array([[[0, 1], [2, 2]]], "int64"))
    label = paddle.to_tensor(np.array([[[0, 1], [2, 255]]], "int64"))
    return _bug_or_result(lambda: metrics.calculate_area(pred, label, 3), _CONCAT_0D,
                          lambda out: _differs([o.numpy() for o in out], [[1, 1, 1]] * 3))


# ---- 2. Trainer export without main_program ----------------------------------------------------
class _TinyDetector(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 2, 1)

    def forward(self, inputs):
        score = self.conv(inputs["image"]).mean(axis=[1, 2, 3], keepdim=True)
        return {"bbox": score * inputs["scale_factor"][:, :1], "bbox_num": inputs["im_shape"][:, 0]}


def probe_det_export_full_graph():
    """``Trainer._get_infer_cfg_and_input_spec`` on a one-conv model (a stand-in ``self`` with
    the config keys it reads; the infer_cfg.yml writer is skipped): the broken code asks a
    partial-graph ``to_static`` program for ``main_program``."""
    from ppdet.core.workspace import AttrDict
    from ppdet.engine import trainer as trainer_module

    class Stub:
        model = _TinyDetector()
        cfg = AttrDict(architecture="RetinaNet", weights="",
                       TestReader={"inputs_def": {"image_shape": [3, -1, -1]}},
                       export={"post_process": True, "nms": True, "benchmark": False,
                               "fuse_conv_bn": False})

    Stub.model.eval()
    dump = trainer_module.__dict__.get("_dump_infer_config")
    trainer_module._dump_infer_config = lambda *args, **kwargs: None
    try:
        with tempfile.TemporaryDirectory() as save_dir:
            return _bug_or_result(
                lambda: trainer_module.Trainer._get_infer_cfg_and_input_spec(Stub(), save_dir),
                ("main_program",),
                lambda out: None if out[0] is not None else "no static model returned")
    finally:
        trainer_module._dump_infer_config = dump
        if not paddle.in_dynamic_mode():
            paddle.disable_static()


# ---- 3. multiclass NMS inside a PIR program ----------------------------------------------------
def probe_det_multiclass_nms_pir():
    """``ppdet.modeling.ops.multiclass_nms`` under ``to_static(full_graph=True)`` on 8 boxes,
    2 classes: the broken code builds the op with the legacy ``append_op``, which a PIR
    program rejects."""
    from ppdet.modeling import ops
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (1, 8, 2))
    boxes = paddle.to_tensor(np.concatenate([xy, xy + 10], -1).astype("float32"))
    scores = paddle.to_tensor(rng.uniform(0, 1, (1, 2, 8)).astype("float32"))

    def nms(b, s):
        out, num, _ = ops.multiclass_nms(b, s, score_threshold=0.1, nms_top_k=10, keep_top_k=5,
                                         nms_threshold=0.5, background_label=-1)
        return out, num

    spec = [paddle.static.InputSpec([None, None, 4], "float32"),
            paddle.static.InputSpec([None, 2, None], "float32")]

    def both():  # (eager, exported) outputs
        return nms(boxes, scores), paddle.jit.to_static(nms, input_spec=spec,
                                                        full_graph=True)(boxes, scores)

    def check(out):
        (eager_out, eager_num), (static_out, static_num) = out
        return (_differs(static_num.numpy(), eager_num.numpy())
                or _differs(static_out.numpy(), eager_out.numpy()))

    return _bug_or_result(both, ("should be one of [str, bytes, Variable]",), check)


# ---- 4. BBoxPostProcess.get_pred under export ----------------------------------------------------
def probe_det_bbox_post_branch_free():
    """``BBoxPostProcess.get_pred`` under ``to_static(full_graph=True)`` for an image with no
    detection: the broken code's ``if bbox_num[i] == 0`` branches give counts of different
    rank. The correct result is the toolkit's dummy box, rescaled."""
    from ppdet.modeling.post_process import BBoxPostProcess
    post = BBoxPostProcess(num_classes=2)

    def get_pred(bboxes, bbox_num, im_shape, scale_factor):
        return post.get_pred(bboxes, bbox_num, im_shape, scale_factor)[1:]

    spec = [paddle.static.InputSpec([None, 6], "float32"), paddle.static.InputSpec([None], "int32"),
            paddle.static.InputSpec([None, 2], "float32"),
            paddle.static.InputSpec([None, 2], "float32")]
    args = (paddle.zeros([0, 6], "float32"), paddle.to_tensor(np.array([0], "int32")),
            paddle.to_tensor([[64.0, 80.0]]), paddle.to_tensor([[0.5, 0.8]]))

    def check(out):
        return _differs(out[1].numpy(), [1]) or _differs(out[0].numpy(), [[0, 0, 0, 0, 1.25, 2.0]])

    return _bug_or_result(
        lambda: paddle.jit.to_static(get_pred, input_spec=spec, full_graph=True)(*args),
        ("rank inconsistency", "update_output"), check)


# ---- 5. paddleseg CrossEntropyLoss: int64 x float32 --------------------------------------------
def probe_seg_ce_float():
    """``paddleseg.models.losses.CrossEntropyLoss()`` on a 2x2 map with one ignored pixel: the
    broken code multiplies a float mask by int64 labels."""
    from paddleseg.models.losses import CrossEntropyLoss
    logit = paddle.to_tensor(np.array([[[[2.0, 0.0], [1.0, 0.5]], [[0.0, 1.0], [3.0, 0.5]]]],
                                      "float32"))
    label = paddle.to_tensor(np.array([[[0, 1], [1, 255]]], "int64"))
    want = paddle.nn.functional.cross_entropy(logit.transpose([0, 2, 3, 1]), label.unsqueeze(-1),
                                              ignore_index=255, reduction="mean")
    return _bug_or_result(lambda: CrossEntropyLoss()(logit, label), ("Type promotion",),
                          lambda out: _differs(float(out), float(want)))


# ---- 6. paddleseg core.train with 0-d losses ---------------------------------------------------
class TinySegmenter(paddle.nn.Layer):
    """A 1x1 conv to 2 classes, returning PaddleSeg's list of logits."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 2, 1)

    def forward(self, x):
        return [self.conv(x)]


def probe_seg_train_loss_shape():
    """``paddleseg.core.train`` for one iteration of a one-conv model on one 4x4 image with a
    mean loss (logged every iteration): the broken code indexes ``l[0]`` of a 0-d loss."""
    from paddleseg import core

    class MeanSquare(paddle.nn.Layer):
        def forward(self, logit, label):
            return (logit * logit).mean()

    class OneImage(paddle.io.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {"img": np.ones((3, 4, 4), "float32"), "label": np.zeros((4, 4), "int64"),
                    "trans_info": [], "gt_fields": []}

    model = TinySegmenter()
    optimizer = paddle.optimizer.SGD(0.1, parameters=model.parameters())
    with tempfile.TemporaryDirectory() as save_dir:
        return _bug_or_result(
            lambda: core.train(model, OneImage(), optimizer=optimizer, save_dir=save_dir, iters=1,
                               batch_size=1, log_iters=1, save_interval=100,
                               losses={"types": [MeanSquare()], "coef": [1.0]}),
            ("0-dimensional", "too many indices"), lambda out: None)


#: (fix name, toolkit) -> probe
PROBES = {
    ("concat_0d", "ppdet"): probe_concat_0d_ppdet,
    ("concat_0d", "paddleseg"): probe_concat_0d_paddleseg,
    ("det_export_full_graph", "ppdet"): probe_det_export_full_graph,
    ("det_multiclass_nms_pir", "ppdet"): probe_det_multiclass_nms_pir,
    ("det_bbox_post_branch_free", "ppdet"): probe_det_bbox_post_branch_free,
    ("seg_ce_float", "paddleseg"): probe_seg_ce_float,
    ("seg_train_loss_shape", "paddleseg"): probe_seg_train_loss_shape,
}


def run_probe(name, toolkit):
    """Run one probe quietly (its output is kept for the error message) without moving the
    global random state. Returns True (bug present) or False; raises ProbeUndecided."""
    probe = PROBES[(name, toolkit)]
    rng_paddle, rng_numpy = paddle.get_rng_state(), np.random.get_state()
    out = io.StringIO()
    logging.disable(logging.CRITICAL)  # the toolkits' loggers hold their own stream handles
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return probe()
    except ProbeUndecided as err:
        doc = " ".join((probe.__doc__ or "").split())
        raise ProbeUndecided(
            f"compat probe '{name}' ({probe.__module__}.{probe.__name__}: {doc}) could not decide "
            f"whether the imported {toolkit} has the bug: {err}. Set PPVH_COMPAT_DISABLE={name} "
            f"to run without this fix.") from err
    finally:
        logging.disable(logging.NOTSET)
        paddle.set_rng_state(rng_paddle)
        np.random.set_state(rng_numpy)
