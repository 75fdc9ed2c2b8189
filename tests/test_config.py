"""Config loading, -o overrides and strict validation; optimizer parameter groups, LR schedules,
CELoss and TopkAcc (fast: no training)."""
import copy
import math
import os

import numpy as np
import paddle
import pytest

from ppvision_hybrid.engine import ConfigError, apply_overrides, get_config, validate_config
from ppvision_hybrid.engine.engine import build_model_from_config
from ppvision_hybrid.losses import CELoss
from ppvision_hybrid.metrics import TopkAcc
from ppvision_hybrid.optim import build_lr, build_optimizer, split_weight_decay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B0 = os.path.join(ROOT, "configs", "MixFormer_B0.yaml")
DEMO = os.path.join(ROOT, "configs", "demo", "MixFormer_B0_digits.yaml")


@pytest.fixture(scope="module")
def base_cfg():
    return get_config(B0)


def test_b0_config_has_the_paper_recipe(base_cfg):
    opt = base_cfg["Optimizer"]
    assert opt["name"] == "AdamW" and opt["weight_decay"] == 0.04
    assert opt["lr"] == {"name": "Cosine", "learning_rate": 8e-4, "eta_min": 1e-6, "warmup_epoch": 20,
                         "warmup_start_lr": 1e-7}
    assert base_cfg["Global"]["epochs"] == 300
    assert base_cfg["DataLoader"]["Train"]["dataset"]["image_root"] == "./dataset/ILSVRC2012/"
    ops = base_cfg["DataLoader"]["Train"]["dataset"]["batch_transform_ops"][0]["OpSampler"]
    assert ops["MixupOperator"]["alpha"] == 0.2 and ops["CutmixOperator"]["alpha"] == 1.0


def test_overrides_follow_paddleclas_semantics(base_cfg):
    cfg = get_config(B0, ["Global.epochs=2", "Global.device=cpu", "Optimizer.lr.learning_rate=1e-2",
                          "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32",
                          "Global.image_shape=[3, 32, 32]", "Arch.drop_path_rate=0.1",
                          "Global.checkpoints=null"])
    assert cfg["Global"]["epochs"] == 2 and cfg["Global"]["device"] == "cpu"
    assert cfg["Optimizer"]["lr"]["learning_rate"] == 0.01
    assert cfg["DataLoader"]["Train"]["dataset"]["transform_ops"][1]["RandCropImage"]["size"] == 32
    assert cfg["Global"]["image_shape"] == [3, 32, 32] and cfg["Global"]["checkpoints"] is None
    assert cfg["Arch"]["drop_path_rate"] == 0.1
    with pytest.raises(ConfigError, match="list index"):
        apply_overrides(copy.deepcopy(base_cfg), ["DataLoader.Train.dataset.transform_ops.99.X=1"])
    with pytest.raises(ConfigError, match="Section.key=value"):
        apply_overrides({}, ["Global.epochs"])


@pytest.mark.parametrize("override, where", [
    ("Global.epoch=2", "Global.epoch"),
    ("Globl.epochs=2", "Globl"),
    ("AMP.levle=O2", "AMP.levle"),
    ("Optimizer.weight_dacay=0.1", "Optimizer.weight_dacay"),
    ("Optimizer.lr.warmup_epochs=3", "Optimizer.lr.warmup_epochs"),
    ("DataLoader.Train.sampler.batchsize=3", "DataLoader.Train.sampler.batchsize"),
    ("DataLoader.Train.loader.workers=3", "DataLoader.Train.loader.workers"),
    ("DataLoader.Train.dataset.transform_ops.1.RandCropImage.sizes=3", "RandCropImage.sizes"),
    ("Loss.Train.0.CELoss.eps=0.1", "CELoss.eps"),
    ("Infer.PostProcess.top_k=3", "Infer.PostProcess.top_k"),
    ("Metric.Eval.0.TopkAcc.k=3", "TopkAcc.k"),
])
def test_unknown_key_is_named_with_the_accepted_ones(override, where):
    with pytest.raises(ConfigError) as info:
        get_config(B0, [override])
    msg = str(info.value)
    assert where in msg and "Accepted" in msg


def test_paddleclas_keys_with_fixed_values():
    cfg = get_config(B0, ["Global.to_static=True", "Global.use_dali=False", "Global.print_mem_info=True",
                          "Global.log_ranks=0,1", "Global.update_freq=4"])
    assert cfg["Global"]["to_static"] is True and cfg["Global"]["update_freq"] == 4
    with pytest.raises(ConfigError, match="Global.use_dali=True: NVIDIA DALI"):
        get_config(B0, ["Global.use_dali=True"])


def test_unknown_key_message_lists_alternatives():
    with pytest.raises(ConfigError, match=r"Did you mean 'epochs'\?.*Accepted keys in Global: .*epochs"):
        get_config(B0, ["Global.epoch=2"])
    with pytest.raises(ConfigError, match="unknown op 'RandomCrop'.*Accepted: .*RandCropImage"):
        validate_config({"Arch": {"name": "MixFormer_B0"}, "DataLoader": {"Train": {"dataset": {
            "name": "ImageNetDataset", "transform_ops": [{"RandomCrop": {}}]}}}})


def test_unknown_model_name_and_factory_kwarg():
    with pytest.raises(ConfigError, match="Unknown model name 'MixFormer_B9'.*MixFormer_B"):
        build_model_from_config({"name": "MixFormer_B9", "class_num": 10})
    with pytest.raises(ConfigError, match="not_a_kwarg"):
        build_model_from_config({"name": "MixFormer_B0", "class_num": 10, "not_a_kwarg": 1})
    model = build_model_from_config({"name": "MixFormer_B0", "class_num": 7, "drop_path_rate": 0.2,
                                     "infer_add_softmax": True})
    assert model.head.weight.shape[-1] == 7


# ---- optimizer -----------------------------------------------------------------------------

class _Tiny(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3)
        self.norm = paddle.nn.LayerNorm(4)
        self.relative_position_bias_table = self.create_parameter([5, 2])
        self.head = paddle.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.norm(self.conv(x).mean(axis=[2, 3])))


def test_no_weight_decay_groups_contain_exactly_the_named_params():
    model = _Tiny()
    decay, no_decay = split_weight_decay(model, "relative_position_bias_table", False)
    assert [n for n, _ in no_decay] == ["relative_position_bias_table"]
    decay, no_decay = split_weight_decay(model, "relative_position_bias_table norm", True)
    assert sorted(n for n, _ in no_decay) == sorted([
        "relative_position_bias_table", "norm.weight", "norm.bias", "conv.bias", "head.bias"])
    assert sorted(n for n, _ in decay) == ["conv.weight", "head.weight"]
    opt, lr, groups = build_optimizer({"name": "AdamW", "weight_decay": 0.05,
                                       "no_weight_decay_name": "relative_position_bias_table",
                                       "one_dim_param_no_weight_decay": True, "clip_norm": 1.0,
                                       "lr": {"name": "Cosine", "learning_rate": 0.1}}, model, 2, 3)
    assert groups["decay"] == ["conv.weight", "head.weight"]
    assert [g["weight_decay"] for g in opt._param_groups] == [0.05, 0.0]
    assert [len(g["params"]) for g in opt._param_groups] == [2, 5]


def test_weight_decay_is_really_skipped_for_no_decay_params():
    paddle.seed(0)
    model = _Tiny()
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    opt, _, _ = build_optimizer({"name": "AdamW", "weight_decay": 0.5, "no_weight_decay_name": "head",
                                 "lr": 0.1}, model, 1, 1)
    for p in model.parameters():  # zero gradients: only decoupled weight decay moves weights
        p.grad = paddle.zeros_like(p)
    opt.step()
    after = {n: p.numpy() for n, p in model.named_parameters()}
    np.testing.assert_allclose(after["head.weight"], before["head.weight"])
    np.testing.assert_allclose(after["conv.weight"], before["conv.weight"] * (1 - 0.1 * 0.5), rtol=1e-5)
    mom, _, _ = build_optimizer({"name": "Momentum", "momentum": 0.9, "lr": 0.1,
                                 "regularizer": {"name": "L2", "coeff": 1e-4}}, model, 1, 1)
    assert isinstance(mom, paddle.optimizer.Momentum)


def test_lr_schedules_with_epoch_warmup():
    cos = build_lr({"name": "Cosine", "learning_rate": 1.0, "eta_min": 0.0, "warmup_epoch": 2,
                    "warmup_start_lr": 0.0}, epochs=10, iters_per_epoch=4)
    assert cos.lr_at(0) == 0.0 and cos.lr_at(4) == pytest.approx(0.5)   # half-way through warmup
    assert cos.lr_at(8) == pytest.approx(1.0)
    assert cos.lr_at(8 + 16) == pytest.approx(0.5)                      # half of the cosine
    assert cos.lr_at(40) == pytest.approx(0.0, abs=1e-12)
    step = build_lr({"name": "Step", "learning_rate": 0.1, "step_size": 3, "gamma": 0.1}, 10, 2)
    assert step.lr_at(5) == pytest.approx(0.1) and step.lr_at(6) == pytest.approx(0.01)
    pw = build_lr({"name": "Piecewise", "decay_epochs": [2, 4], "values": [0.1, 0.01, 0.001]}, 6, 2)
    assert [pw.lr_at(i * 2) for i in range(6)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    by_epoch = build_lr({"name": "Cosine", "learning_rate": 1.0, "by_epoch": True}, 4, 10)
    assert by_epoch.lr_at(9) == by_epoch.lr_at(0) == 1.0
    with pytest.raises(ValueError, match="len\\(values\\)"):
        build_lr({"name": "Piecewise", "decay_epochs": [1], "values": [1.0]}, 2, 1)
    # the scheduler advances per iteration and restores from its state
    cos.step(); cos.step(); cos.step()
    state = cos.state_dict()
    again = build_lr({"name": "Cosine", "learning_rate": 1.0, "eta_min": 0.0, "warmup_epoch": 2,
                      "warmup_start_lr": 0.0}, epochs=10, iters_per_epoch=4)
    again.set_state_dict(state)
    assert again.get_lr() == cos.get_lr() == pytest.approx(0.375)


# ---- loss and metric -----------------------------------------------------------------------

def test_celoss_hard_soft_and_smoothing():
    logits = paddle.to_tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    hard = paddle.to_tensor([0, 1], dtype="int64")
    logp = np.log(np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True))
    expected = -(logp[0, 0] + logp[1, 1]) / 2
    assert float(CELoss()(logits, hard)["CELoss"]) == pytest.approx(expected, rel=1e-5)
    soft = paddle.to_tensor([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0]])
    exp_soft = -((0.7 * logp[0, 0] + 0.3 * logp[0, 1]) + logp[1, 1]) / 2
    assert float(CELoss()(logits, soft)["CELoss"]) == pytest.approx(exp_soft, rel=1e-5)
    assert float(CELoss()({"logits": logits}, soft)["CELoss"]) == pytest.approx(exp_soft, rel=1e-5)
    eps = 0.3
    smooth = (1 - eps) * np.eye(3)[[0, 1]] + eps / 3
    assert float(CELoss(epsilon=eps)(logits, hard)["CELoss"]) == pytest.approx(-(smooth * logp).sum(1).mean(), rel=1e-5)
    per_sample = CELoss(reduction="none")(logits, hard)["CELoss"].numpy()
    np.testing.assert_allclose(per_sample, [-logp[0, 0], -logp[1, 1]], rtol=1e-5)
    with pytest.raises(ValueError):
        CELoss(epsilon=1.5)


def test_topk_acc():
    m = TopkAcc(topk=[1, 2])
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.15], [0.2, 0.3, 0.5]])
    batch = m.update(logits, np.array([1, 2, 0]))
    assert batch == {"top1": pytest.approx(1 / 3), "top2": pytest.approx(2 / 3)}
    m.update(logits[:1], np.array([0]))
    assert m.accumulate() == {"top1": 0.25, "top2": 0.75}
    with pytest.raises(ValueError, match="soft"):
        m.update(logits, np.eye(3))
    assert math.isclose(TopkAcc(topk=[5]).update(logits, np.array([2, 2, 2]))["top5"], 1.0)


def test_demo_config_parses():
    cfg = get_config(DEMO)
    # ImageNetDataset on a folder named digits (written on first use): runs in PaddleClas's engine too
    assert cfg["Arch"]["class_num"] == 10 and cfg["DataLoader"]["Train"]["dataset"]["name"] == "ImageNetDataset"
    assert cfg["DataLoader"]["Train"]["dataset"]["image_root"].rstrip("/").endswith("digits")


def test_model_ema_update_and_state():
    from ppvision_hybrid.engine import ModelEMA
    model = paddle.nn.Linear(2, 2)
    ema = ModelEMA(model, decay=0.5)
    start = model.weight.numpy().copy()
    model.weight.set_value(paddle.zeros_like(model.weight))
    ema.update(model)
    np.testing.assert_allclose(ema.state_dict()["weight"].numpy(), start * 0.5, rtol=1e-6)
    other = ModelEMA(model, decay=0.5)
    other.load_state_dict({k: v.numpy() for k, v in ema.state_dict().items()})
    np.testing.assert_allclose(other.state_dict()["weight"].numpy(), start * 0.5, rtol=1e-6)


def test_visualdl_writer_optional(monkeypatch, tmp_path):
    import sys
    import types
    from ppvision_hybrid.engine.logger import VisualDLWriter
    calls = []

    class FakeLogWriter:
        def __init__(self, logdir):
            calls.append(("init", logdir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            calls.append(("close",))
    monkeypatch.setitem(sys.modules, "visualdl", types.SimpleNamespace(LogWriter=FakeLogWriter))
    writer = VisualDLWriter(True, str(tmp_path / "vdl"))
    writer.add_scalar("train/loss", 1.5, 3)
    writer.close()
    assert calls == [("init", str(tmp_path / "vdl")), ("train/loss", 1.5, 3), ("close",)]
    monkeypatch.setitem(sys.modules, "visualdl", None)  # not installed: warn, then no-op
    with pytest.warns(UserWarning, match="visualdl is not installed"):
        quiet = VisualDLWriter(True, str(tmp_path / "vdl2"))
    quiet.add_scalar("x", 1.0, 1)
    assert VisualDLWriter(False, str(tmp_path)).writer is None
