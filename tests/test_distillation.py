"""Knowledge-distillation losses (PaddleClas's names and keys) against their formulas, and the
DistillationModel's frozen members."""
import numpy as np
import paddle
import pytest

from ppvision_hybrid.losses import LOSSES, build_loss

RNG = np.random.RandomState(0)
S = RNG.randn(4, 6).astype("float32")
T = RNG.randn(4, 6).astype("float32")
Y = np.array([0, 3, 5, 1])


def _softmax(x, t=1.0):
    e = np.exp(x / t - (x / t).max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _run(name, **kwargs):
    loss = LOSSES[name](**kwargs)
    out = loss({"Student": paddle.to_tensor(S), "Teacher": paddle.to_tensor(T)},
               paddle.to_tensor(Y.reshape(-1, 1)))
    assert len(out) == 1
    (key, value), = out.items()
    return key, float(value)


PAIR = dict(model_name_pairs=[["Student", "Teacher"]])


def test_kldiv_dml_and_ce():
    key, value = _run("DistillationKLDivLoss", temperature=4, **PAIR)
    p_t, p_s = _softmax(T, 4), _softmax(S, 4)
    assert key == "loss_kldiv_Student_Teacher"
    assert value == pytest.approx((p_t * (np.log(p_t) - np.log(p_s))).sum() * 16 / 4, rel=1e-4)
    key, value = _run("DistillationDMLLoss", **PAIR)
    a, b = _softmax(S), _softmax(T)
    dml = ((b * np.log(b / a) + a * np.log(a / b)) * 6 / 2).mean()
    assert key == "DMLLoss_Student_Teacher_0" and value == pytest.approx(dml, rel=1e-4)
    key, value = _run("DistillationCELoss", **PAIR)
    assert key == "CELoss_Student_Teacher"
    assert value == pytest.approx(-(b * np.log(a)).sum(1).mean(), rel=1e-5)
    key, value = _run("DistillationGTCELoss", model_names=["Student"])
    assert key == "CELoss_Student" and value == pytest.approx(-np.log(a[np.arange(4), Y]).mean(), rel=1e-5)


def test_dkd_splits_target_and_other_classes():
    t = 2.0
    _, value = _run("DistillationDKDLoss", temperature=t, alpha=1.0, beta=0.0, **PAIR)
    p_s, p_t = _softmax(S, t), _softmax(T, t)
    gt = np.eye(6)[Y]
    bs = np.stack([(p_s * gt).sum(1), (p_s * (1 - gt)).sum(1)], 1)
    bt = np.stack([(p_t * gt).sum(1), (p_t * (1 - gt)).sum(1)], 1)
    tckd = (bt * np.log(bt / bs)).sum() * t * t / 4
    assert value == pytest.approx(tckd, rel=1e-4)
    _, value = _run("DistillationDKDLoss", temperature=t, alpha=0.0, beta=1.0, **PAIR)
    q_s, q_t = _softmax(S - 1000 * t * gt, t), _softmax(T - 1000 * t * gt, t)
    mask = gt == 0
    nckd = (q_t[mask] * np.log(q_t[mask] / q_s[mask])).sum() * t * t / 4
    assert value == pytest.approx(nckd, rel=1e-3)


def test_identical_outputs_give_zero_for_symmetric_losses():
    same = {"Student": paddle.to_tensor(S), "Teacher": paddle.to_tensor(S)}
    label = paddle.to_tensor(Y)
    for name in ("DistillationDMLLoss", "DistillationKLDivLoss", "DistillationDISTLoss", "DistillationDistanceLoss"):
        (value,) = LOSSES[name](**PAIR)(same, label).values()
        assert abs(float(value)) < 1e-5, name


def test_wsl_skd_and_combined_weights():
    _, wsl = _run("DistillationWSLLoss", temperature=2.0, **PAIR)
    _, skd = _run("DistillationSKDLoss", temperature=1.0, multiplier=2.0, alpha=0.9, **PAIR)
    assert wsl > 0 and skd > 0
    combined = build_loss([{"DistillationWSLLoss": dict(weight=2.5, temperature=2.0, **PAIR)},
                           {"DistillationGTCELoss": {"weight": 0.5, "model_names": ["Student"]}}])
    out = combined({"Student": paddle.to_tensor(S), "Teacher": paddle.to_tensor(T)}, paddle.to_tensor(Y))
    assert float(out["wsl_loss_Student_Teacher"]) == pytest.approx(2.5 * wsl, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(2.5 * wsl + float(out["CELoss_Student"]), rel=1e-5)


def test_missing_member_and_bad_pairs_are_clear():
    with pytest.raises(ValueError, match="needs the output of model 'Teacher'"):
        LOSSES["DistillationKLDivLoss"](**PAIR)({"Student": paddle.to_tensor(S)}, None)
    with pytest.raises(ValueError, match="model_name_pairs"):
        LOSSES["DistillationDKDLoss"](model_name_pairs=["Student"])
    with pytest.raises(ValueError, match="multi-label"):
        LOSSES["DistillationDMLLoss"](weight_ratio=True, **PAIR)
    outputs = {"Student": paddle.to_tensor(S), "Teacher": paddle.to_tensor(T)}
    with_key = LOSSES["DistillationKLDivLoss"](key="logits", **PAIR)(outputs, None)
    assert float(with_key["loss_kldiv_Student_Teacher"]) == pytest.approx(_run("DistillationKLDivLoss", **PAIR)[1])
    with pytest.raises(ValueError, match="key 'blocks5' names an intermediate output"):
        LOSSES["DistillationDistanceLoss"](key="blocks5", **PAIR)(outputs, None)


def test_distillation_model_freezes_and_keeps_teacher_in_eval():
    from ppvision_hybrid.engine.engine import build_model_from_config
    arch = {"name": "DistillationModel", "class_num": 5, "freeze_params_list": [True, False],
            "infer_model_name": "Student",
            "models": [{"Teacher": {"name": "MixFormer_B0", "window_size": 4, "last_dim": 16}},
                       {"Student": {"name": "MixFormer_B0", "window_size": 4, "last_dim": 8}}]}
    model = build_model_from_config(arch)
    model.train()
    assert not model.Teacher.training and model.Student.training
    assert all(p.stop_gradient for p in model.Teacher.parameters())
    out = model(paddle.randn([2, 3, 32, 32]))
    assert sorted(out) == ["Student", "Teacher"] and out["Student"].shape == [2, 5]
    assert model.member() is model.Student
    from ppvision_hybrid.engine import ConfigError
    with pytest.raises(ConfigError, match="infer_model_name 'Pupil'"):
        build_model_from_config(dict(arch, infer_model_name="Pupil"))


class _GraphBreak(paddle.nn.Layer):
    """A member whose forward reads a tensor value (a graph break for to_static, as in the
    backbones' input checks)."""

    def __init__(self):
        super().__init__()
        self.weight = self.create_parameter([4, 3])

    def forward(self, x):
        if float(x.abs().max()) > 1e9:
            x = x * 0
        return paddle.matmul(x, self.weight)


def test_distillation_model_trains_under_to_static():
    """Global.to_static with a DistillationModel (PaddleClas's SSLD configs): the forward traces
    around members with graph breaks (a dict comprehension over the members did not)."""
    from paddle.static import InputSpec
    from ppvision_hybrid.engine.distillation import DistillationModel
    paddle.seed(0)
    model = DistillationModel([{"Teacher": {}}, {"Student": {}}], lambda cfg: _GraphBreak(),
                              freeze_params_list=[True, False])
    model.train()
    static = paddle.jit.to_static(model, input_spec=[InputSpec([None, 4], "float32")])
    out = static(paddle.ones([2, 4]))
    assert sorted(out) == ["Student", "Teacher"]
    loss = LOSSES["DistillationDMLLoss"](key="logits", **PAIR)(out, None)["DMLLoss_Student_Teacher_0"]
    loss.backward()
    assert model.Student.weight.grad is not None and model.Teacher.weight.grad is None
