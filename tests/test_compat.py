"""ppvision_hybrid.compat: each fix is applied only when its probe finds the bug in the imported
toolkit code. Per fix: the wheel's code has the bug (probe True, patched); a stand-in with the
fixed behaviour of the toolkits' develop branches is left untouched (probe False); a probe that
sees something else stops with a message naming it. Then one test per fix showing the toolkit
piece breaks without it and gives the toolkit's own results with it."""
import numpy as np
import pytest

import paddleseg  # noqa: E402,F401  (installed by install.sh: an import failure fails the run)
import ppdet  # noqa: E402,F401

import paddle  # noqa: E402

from ppvision_hybrid import compat  # noqa: E402
from ppvision_hybrid.compat import fixes, probes  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def fixes_applied():
    compat.apply_fixes()
    yield


# ---- probes: bug present -> patched, bug absent -> untouched, undecided -> named ---------------
def _rois_fixed(self, boxes, im_shape):
    """CascadeHead._get_rois_from_boxes as develop behaves: per-image counts as [1] slices."""
    return list(boxes), paddle.concat([paddle.shape(b)[0:1] for b in boxes])


def _calculate_area_fixed(pred, label, num_classes, ignore_index=255):
    valid = label != ignore_index
    areas = [[], [], []]
    for i in range(num_classes):
        pred_i = paddle.logical_and(pred == i, valid)
        label_i = label == i
        for area, mask in zip(areas, (paddle.logical_and(pred_i, label_i), pred_i, label_i)):
            area.append(paddle.sum(mask.astype("int64")))
    return tuple(paddle.stack(a) for a in areas)


def _export_spec_fixed(self, save_dir, prune_input=True, kl_quant=False, **kwargs):
    spec = [{"image": paddle.static.InputSpec([None, 3, -1, -1], name="image"),
             "im_shape": paddle.static.InputSpec([None, 2], name="im_shape"),
             "scale_factor": paddle.static.InputSpec([None, 2], name="scale_factor")}]
    return paddle.jit.to_static(self.model, input_spec=spec, full_graph=True), spec


def _seg_train_fixed(*args, **kwargs):
    """core.train whose loss list holds [1]-shaped losses, as develop's loop expects nothing else."""
    import importlib
    train_module = importlib.import_module("paddleseg.core.train")  # the module, not the function
    original = train_module.loss_computation
    train_module.loss_computation = lambda *a, **k: [l.reshape([1]) for l in original(*a, **k)]
    try:
        return train_module.train(*args, **kwargs)
    finally:
        train_module.loss_computation = original


def _owner(path):
    module, attr = path.rsplit(":", 1)
    obj = __import__(module, fromlist=["_"])
    for part in attr.split(".")[:-1]:
        obj = getattr(obj, part)
    return obj, attr.split(".")[-1]


#: (fix, toolkit) -> (toolkit attribute the probe calls, stand-in with develop's fixed behaviour)
STAND_INS = {
    ("concat_0d", "ppdet"): ("ppdet.modeling.heads.cascade_head:CascadeHead._get_rois_from_boxes",
                             _rois_fixed),
    ("concat_0d", "paddleseg"): ("paddleseg.utils.metrics:calculate_area", _calculate_area_fixed),
    ("det_export_full_graph", "ppdet"): ("ppdet.engine.trainer:Trainer._get_infer_cfg_and_input_spec",
                                         _export_spec_fixed),
    ("det_multiclass_nms_pir", "ppdet"): ("ppdet.modeling.ops:multiclass_nms",
                                          fixes.multiclass_nms_phi),
    ("det_bbox_post_branch_free", "ppdet"): ("ppdet.modeling.post_process:BBoxPostProcess.get_pred",
                                             fixes.get_pred_branch_free),
    ("seg_ce_float", "paddleseg"): ("paddleseg.models.losses.cross_entropy_loss:"
                                    "CrossEntropyLoss._post_process_loss", fixes.post_process_loss_float),
    ("seg_train_loss_shape", "paddleseg"): ("paddleseg.core:train", _seg_train_fixed),
}


def test_every_fix_has_a_probe_and_a_stand_in():
    expected = {(n, t) for n, (owner, _) in compat.FIXES.items()
                for t in ("ppdet", "paddleseg") if owner in ("both", t)}
    assert set(probes.PROBES) == expected == set(STAND_INS)
    assert compat.applied_fixes() == sorted(compat.FIXES)  # the wheels have all six bugs
    assert set(compat.probe_results().values()) == {"patched"}


@pytest.fixture
def reprobe():
    """Forget the answers of the probes a test re-runs; afterwards re-probe and re-apply, so
    the wheel's fixes are back for the next test."""
    names = []
    yield names.append
    compat.forget_probes(names)
    compat.apply_fixes()


@pytest.mark.parametrize("key", sorted(STAND_INS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_probe_finds_the_bug_in_the_wheel_and_patches(key, reprobe):
    name, toolkit = key
    reprobe(name)
    compat.forget_probes([name])
    assert probes.run_probe(name, toolkit) is True  # the wheel's own code, unpatched
    compat.apply_fixes(toolkit)
    assert compat.probe_results()[key] == "patched"
    assert probes.run_probe(name, toolkit) is False  # and the patched code passes its probe


@pytest.mark.parametrize("key", sorted(STAND_INS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_probe_leaves_fixed_code_untouched(key, reprobe, monkeypatch):
    name, toolkit = key
    reprobe(name)
    compat.forget_probes([name])
    path, stand_in = STAND_INS[key]
    owner, attr = _owner(path)
    monkeypatch.setattr(owner, attr, stand_in)
    modules = {m: __import__(m, fromlist=["_"]) for m in fixes.CONCAT_0D_MODULES[toolkit]}
    assert probes.run_probe(name, toolkit) is False
    compat.apply_fixes(toolkit)
    assert compat.probe_results()[key] == "not needed"
    assert getattr(owner, attr) is stand_in  # nothing was patched over it
    if name == "concat_0d":
        assert all(m.paddle is paddle for m in modules.values())


@pytest.mark.parametrize("key", sorted(STAND_INS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_undecided_probe_names_itself(key, reprobe, monkeypatch):
    name, toolkit = key
    reprobe(name)
    compat.forget_probes([name])
    owner, attr = _owner(STAND_INS[key][0])

    def changed(*args, **kwargs):
        raise NotImplementedError("this toolkit changed its API")

    monkeypatch.setattr(owner, attr, changed)
    with pytest.raises(compat.ProbeUndecided, match=rf"compat probe '{name}' .*could not decide.*"
                                                    rf"changed its API.*PPVH_COMPAT_DISABLE={name}"):
        compat.apply_fixes(toolkit)
    assert key not in compat.probe_results()
    compat.apply_fixes(toolkit, disable=[name])  # the way out the message names


def test_wrong_result_is_undecided_too(reprobe, monkeypatch):
    reprobe("concat_0d")
    compat.forget_probes(["concat_0d"])
    from paddleseg.utils import metrics
    monkeypatch.setattr(metrics, "calculate_area", lambda *a, **k: tuple(
        paddle.zeros([3], "int64") for _ in range(3)))
    with pytest.raises(compat.ProbeUndecided, match="wrong result"):
        probes.run_probe("concat_0d", "paddleseg")


def test_apply_is_idempotent_and_reversible():
    import ppdet.modeling.ops as ops
    first = compat.apply_fixes()
    patched = ops.multiclass_nms
    assert compat.apply_fixes() == first == sorted(compat.FIXES)
    assert ops.multiclass_nms is patched  # applying again changes nothing
    with compat.fix_disabled("det_multiclass_nms_pir"):
        assert ops.multiclass_nms is not patched
        assert "det_multiclass_nms_pir" not in compat.applied_fixes()
    assert ops.multiclass_nms is patched
    with pytest.raises(ValueError, match="unknown fix"):
        compat.apply_fixes(disable=["no_such_fix"])


# ---- 1. concat of 0-d tensors ---------------------------------------------------------------
def test_fix_concat_0d_seg_metrics():
    from paddleseg.utils.metrics import calculate_area
    pred = paddle.to_tensor(np.array([[[0, 1], [2, 2]]], "int64"))
    label = paddle.to_tensor(np.array([[[0, 1], [2, 255]]], "int64"))
    inter, pred_area, label_area = calculate_area(pred, label, 3)
    np.testing.assert_array_equal(inter.numpy(), [1, 1, 1])
    np.testing.assert_array_equal(pred_area.numpy(), [1, 1, 1])
    np.testing.assert_array_equal(label_area.numpy(), [1, 1, 1])
    with compat.fix_disabled("concat_0d"):
        with pytest.raises(Exception, match="axis"):
            calculate_area(pred, label, 3)


def test_fix_concat_0d_cascade_rois():
    from ppdet.modeling.heads.cascade_head import CascadeHead

    class Head:  # the method only reads self.training
        training = False

    boxes = [paddle.to_tensor(np.array([[0, 0, 5, 5], [1, 1, 9, 9]], "float32")),
             paddle.to_tensor(np.array([[2, 2, 4, 4]], "float32"))]
    im_shape = paddle.to_tensor(np.array([[10, 10], [10, 10]], "float32"))
    rois, rois_num = CascadeHead._get_rois_from_boxes(Head(), boxes, im_shape)
    np.testing.assert_array_equal(rois_num.numpy(), [2, 1])
    with compat.fix_disabled("concat_0d"):
        with pytest.raises(Exception, match="axis"):
            CascadeHead._get_rois_from_boxes(Head(), boxes, im_shape)


# ---- 3. multiclass NMS in a PIR program ----------------------------------------------------
def _nms_inputs():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (1, 20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (1, 20, 2))], -1).astype("float32")
    scores = rng.uniform(0, 1, (1, 3, 20)).astype("float32")
    return paddle.to_tensor(boxes), paddle.to_tensor(scores)


def _nms_program():
    import ppdet.modeling.ops as ops

    def nms(boxes, scores):
        out, num, _ = ops.multiclass_nms(boxes, scores, score_threshold=0.3, nms_top_k=100,
                                         keep_top_k=10, nms_threshold=0.5, background_label=-1)
        return out, num

    spec = [paddle.static.InputSpec([None, None, 4], "float32"),
            paddle.static.InputSpec([None, 3, None], "float32")]
    return nms, paddle.jit.to_static(nms, input_spec=spec, full_graph=True)


def test_fix_multiclass_nms_pir():
    boxes, scores = _nms_inputs()
    eager, static = _nms_program()
    ref_out, ref_num = eager(boxes, scores)
    out, num = static(boxes, scores)
    assert int(num.numpy().sum()) > 0
    np.testing.assert_allclose(out.numpy(), ref_out.numpy(), rtol=1e-6)
    with compat.fix_disabled("det_multiclass_nms_pir"):
        _, static_unfixed = _nms_program()
        with pytest.raises(Exception, match="BBoxes|Value|Variable"):
            static_unfixed(boxes, scores)


# ---- 4. branch-free BBoxPostProcess.get_pred -----------------------------------------------
def _post_inputs(counts):
    rng = np.random.default_rng(1)
    n = sum(counts)
    xy = rng.uniform(0, 60, (n, 2))
    boxes = np.concatenate([rng.integers(0, 2, (n, 1)), rng.uniform(0, 1, (n, 1)), xy,
                            xy + rng.uniform(-2, 40, (n, 2))], 1).astype("float32")
    return (paddle.to_tensor(boxes), paddle.to_tensor(np.array(counts, "int32")),
            paddle.to_tensor(np.array([[64, 80]] * len(counts), "float32")),
            paddle.to_tensor(np.array([[0.5, 0.8]] * len(counts), "float32")))


@pytest.mark.parametrize("counts", [[5], [0], [3, 0, 2]])
def test_fix_bbox_post_branch_free_same_results(counts):
    from ppdet.modeling.post_process import BBoxPostProcess
    post = BBoxPostProcess(num_classes=2)
    args = _post_inputs(counts)
    ours = post.get_pred(*args)
    ours_shape = post.get_origin_shape().numpy()
    with compat.fix_disabled("det_bbox_post_branch_free"):
        post_ref = BBoxPostProcess(num_classes=2)
        ref = post_ref.get_pred(*args)
        ref_shape = post_ref.get_origin_shape().numpy()
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(ours_shape, ref_shape)


def test_fix_bbox_post_branch_free_exports():
    from ppdet.modeling.post_process import BBoxPostProcess
    spec = [paddle.static.InputSpec([None, 6], "float32"), paddle.static.InputSpec([None], "int32"),
            paddle.static.InputSpec([None, 2], "float32"), paddle.static.InputSpec([None, 2], "float32")]

    def program():
        post = BBoxPostProcess(num_classes=2)

        def get_pred(bboxes, bbox_num, im_shape, scale_factor):
            return post.get_pred(bboxes, bbox_num, im_shape, scale_factor)[1:]

        return paddle.jit.to_static(get_pred, input_spec=spec, full_graph=True)

    args = _post_inputs([0])
    pred, num = program()(*args)
    np.testing.assert_array_equal(num.numpy(), [1])
    # the toolkit's dummy box [0, 0, 1, 1] with label 0, score 0, rescaled by 1/(0.8, 0.5)
    np.testing.assert_allclose(pred.numpy(), [[0, 0, 0, 0, 1.25, 2.0]])
    with compat.fix_disabled("det_bbox_post_branch_free"):
        with pytest.raises(Exception):
            program()(*args)


# ---- 2. Trainer export with full_graph ---------------------------------------------------------
def test_fix_det_export_full_graph_wrapper():
    """Without the fix the toolkit asks the partial-graph program for main_program."""
    from ppdet.engine import trainer as trainer_module
    method = trainer_module.Trainer._get_infer_cfg_and_input_spec
    assert getattr(method, "__wrapped__", None) is not None
    with compat.fix_disabled("det_export_full_graph"):
        assert getattr(trainer_module.Trainer._get_infer_cfg_and_input_spec, "__wrapped__", None) is None
        layer = paddle.nn.Linear(2, 2)
        static = paddle.jit.to_static(layer, input_spec=[paddle.static.InputSpec([None, 2])])
        with pytest.raises(Exception, match="main_program"):
            static.forward.main_program  # what the toolkit's export does next
    # the end-to-end export with the fix runs in tests/test_dense.py


# ---- 5. paddleseg CrossEntropyLoss dtype promotion --------------------------------------------
def test_fix_seg_ce_float():
    from paddleseg.models.losses import CrossEntropyLoss
    rng = np.random.default_rng(2)
    logit = paddle.to_tensor(rng.standard_normal((2, 3, 5, 6)).astype("float32"))
    label_np = rng.integers(0, 3, (2, 5, 6)).astype("int64")
    label_np[0, 0, :3] = 255
    label = paddle.to_tensor(label_np)
    loss = CrossEntropyLoss()(logit, label)
    ref = paddle.nn.functional.cross_entropy(logit.transpose([0, 2, 3, 1]), label.unsqueeze(-1),
                                             ignore_index=255, reduction="mean")
    np.testing.assert_allclose(float(loss), float(ref), rtol=1e-5)
    weighted = CrossEntropyLoss(weight=[1.0, 2.0, 0.5])(logit, label)
    assert np.isfinite(float(weighted))
    with compat.fix_disabled("seg_ce_float"):
        with pytest.raises(Exception, match="promotion|dtype|type"):
            CrossEntropyLoss()(logit, label)


# ---- 6. paddleseg core.train with 0-d losses --------------------------------------------------
def test_fix_seg_train_loss_shape(tmp_path):
    from paddleseg import core
    from paddleseg.models.losses import CrossEntropyLoss

    class Data(paddle.io.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            img = np.random.default_rng(i).standard_normal((3, 8, 8)).astype("float32")
            return {"img": img, "label": (img[0] > 0).astype("int64"), "trans_info": [],
                    "gt_fields": []}

    def train(save):
        model = probes.TinySegmenter()
        opt = paddle.optimizer.SGD(0.1, parameters=model.parameters())
        core.train(model, Data(), optimizer=opt, save_dir=str(tmp_path / save), iters=1,
                   batch_size=2, log_iters=1, save_interval=100,
                   losses={"types": [CrossEntropyLoss()], "coef": [1.0]})

    train("fixed")
    with compat.fix_disabled("seg_train_loss_shape"):
        with pytest.raises(IndexError, match="0-dimensional|too many indices"):
            train("unfixed")
