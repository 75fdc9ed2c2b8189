"""PaddleClas's config schema with PaddleClas's meanings: a representative set of PaddleClas-style
configs (ours, covering every key and op PaddleClas's ImageNet configs use) through validation
and one training step each, the refusals that name the feature, and behaviour tests for the
optimizers, clipping, LR schedules, gradient accumulation, to_static and distillation.

Data: the digits folder (10 classes, 8x8 images upsampled to 32x32); model: MixFormer_B0 with a
window of 4 and a 32-wide head (about 0.5 s a step on one core).
"""
import copy
import math
import os

import numpy as np
import paddle
import pytest

from ppvision_hybrid.engine import ConfigError, Engine, validate_config
from ppvision_hybrid.optim import build_lr, build_optimizer

TINY_ARCH = {"name": "MixFormer_B0", "class_num": 10, "window_size": 4, "last_dim": 32}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits folder plus ``mini_list.txt``: 40 validation images, for quick evaluations."""
    from ppvision_hybrid.data.digits import materialize_digits
    root = materialize_digits(str(tmp_path_factory.mktemp("data") / "digits"), verbose=False)
    with open(os.path.join(root, "val_list.txt")) as f:
        lines = f.readlines()[:40]
    with open(os.path.join(root, "mini_list.txt"), "w") as f:
        f.writelines(lines)
    return root


def _eval_ops():
    return [{"DecodeImage": {"to_rgb": True, "channel_first": False}},
            {"ResizeImage": {"resize_short": 36}}, {"CropImage": {"size": 32}},
            {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406],
                                "std": [0.229, 0.224, 0.225], "order": ""}}]


def paddleclas_config(root, out):
    """A PaddleClas ImageNet config as PaddleClas ships them (ResNet50.yaml's layout), on the
    digits folder at 32x32."""
    return {
        "Global": {"checkpoints": None, "pretrained_model": None, "output_dir": str(out),
                   "device": "cpu", "save_interval": 1, "eval_during_train": False,
                   "eval_interval": 1, "epochs": 1, "print_batch_step": 1, "use_visualdl": False,
                   "image_shape": [3, 32, 32], "save_inference_dir": str(out / "inference"),
                   "to_static": False, "use_dali": False, "iter_per_epoch": 1, "seed": 0},
        "AMP": {"use_amp": False, "use_fp16_test": False, "scale_loss": 128.0,
                "use_dynamic_loss_scaling": True, "use_promote": False, "level": "O1"},
        "Arch": dict(TINY_ARCH),
        "Loss": {"Train": [{"CELoss": {"weight": 1.0, "epsilon": 0.1}}],
                 "Eval": [{"CELoss": {"weight": 1.0}}]},
        "Optimizer": {"name": "Momentum", "momentum": 0.9,
                      "lr": {"name": "Piecewise", "learning_rate": 0.1, "decay_epochs": [30, 60, 90],
                             "values": [0.1, 0.01, 0.001, 0.0001]},
                      "regularizer": {"name": "L2", "coeff": 0.0001}},
        "DataLoader": {
            "Train": {"dataset": {"name": "ImageNetDataset", "image_root": root,
                                  "cls_label_path": os.path.join(root, "val_list.txt"),
                                  "transform_ops": [{"DecodeImage": {"to_rgb": True, "channel_first": False}},
                                                    {"RandCropImage": {"size": 32}},
                                                    {"RandFlipImage": {"flip_code": 1}},
                                                    {"NormalizeImage": {"scale": "1.0/255.0",
                                                                        "mean": [0.485, 0.456, 0.406],
                                                                        "std": [0.229, 0.224, 0.225],
                                                                        "order": ""}}]},
                      "sampler": {"name": "DistributedBatchSampler", "batch_size": 4, "drop_last": False,
                                  "shuffle": True},
                      "loader": {"num_workers": 0, "use_shared_memory": False}},
            "Eval": {"dataset": {"name": "ImageNetDataset", "image_root": root,
                                 "cls_label_path": os.path.join(root, "mini_list.txt"),
                                 "transform_ops": _eval_ops()},
                     "sampler": {"name": "DistributedBatchSampler", "batch_size": 64, "drop_last": False,
                                 "shuffle": False},
                     "loader": {"num_workers": 0, "use_shared_memory": False}}},
        "Infer": {"infer_imgs": os.path.join(root, "images", "val"), "batch_size": 10,
                  "transforms": _eval_ops()[:-1] + [_eval_ops()[-1], {"ToCHWImage": None}],
                  "PostProcess": {"name": "Topk", "topk": 5,
                                  "class_id_map_file": os.path.join(root, "label_list.txt")}},
        "Metric": {"Train": [{"TopkAcc": {"topk": [1, 5]}}], "Eval": [{"TopkAcc": {"topk": [1, 5]}}]},
    }


def _set(cfg, dotted, value):
    node, parts = cfg, dotted.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def _train_ops(*extra_before_normalize, after=()):
    ops = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"RandCropImage": {"size": 32}},
           {"RandFlipImage": {"flip_code": 1}}]
    ops += list(extra_before_normalize)
    ops.append({"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406],
                                   "std": [0.229, 0.224, 0.225], "order": ""}})
    return ops + list(after)


#: each case: the keys and values that differ from ``paddleclas_config`` (PaddleClas's keys and
#: ops in the combinations its configs use them)
CASES = {
    "resnet50_piecewise_momentum": {},
    "swin_adamw_cosine_timm": {
        "Optimizer": {"name": "AdamW", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.05,
                      "no_weight_decay_name": "absolute_pos_embed relative_position_bias_table .bias norm",
                      "one_dim_param_no_weight_decay": True, "clip_norm": 5.0,
                      "lr": {"name": "Cosine", "learning_rate": 1e-3, "eta_min": 2e-5, "warmup_epoch": 20,
                             "warmup_start_lr": 2e-6}},
        "EMA": {"decay": 0.9999},
        "Global.print_mem_info": True, "Global.log_ranks": "0,1,2,3",
        "Arch.use_sync_bn": True, "Arch.data_format": "NCHW", "Arch.use_fused_attn": True,
        "Arch.use_fused_linear": True,
        "DataLoader.Train.dataset.transform_ops": _train_ops(
            {"TimmAutoAugment": {"config_str": "rand-m9-mstd0.5-inc1 ", "interpolation": "bicubic",
                                 "img_size": 32, "mean": [0.485, 0.456, 0.406], "prob": 1.0}},
            after=[{"RandomErasing": {"EPSILON": 0.25, "sl": 0.02, "sh": "1.0/3.0", "r1": 0.3, "attempt": 10,
                                      "use_log_aspect": True, "mode": "pixel", "mean": [0.0, 0.0, 0.0]}}]),
        "DataLoader.Train.dataset.batch_transform_ops": [
            {"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5},
                           "CutmixOperator": {"alpha": 1.0, "prob": 0.5}}}],
        "Metric.Train": None,
    },
    "rmsprop_step_autoaugment_colorjitter": {
        "Optimizer": {"name": "RMSProp", "momentum": 0.9, "rho": 0.9, "epsilon": 0.001,
                      "lr": {"name": "Step", "learning_rate": 0.016, "step_size": 2.4, "gamma": 0.97,
                             "warmup_epoch": 3, "warmup_start_lr": 0.0},
                      "regularizer": {"name": "L2", "coeff": 1e-5}},
        "DataLoader.Train.dataset.transform_ops": _train_ops(
            {"AutoAugment": {}}, {"ColorJitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4,
                                                  "hue": 0.1}}, {"PCALighting": {}},
            after=[{"Cutout": {"n_holes": 1, "length": 8}}]),
    },
    "sgd_multistep_randaugments_gridmask": {
        "Optimizer": {"name": "SGD", "weight_decay": 1e-4,
                      "lr": {"name": "MultiStepDecay", "learning_rate": 0.1, "milestones": [30, 60, 90],
                             "step_each_epoch": 1, "gamma": 0.1, "by_epoch": True}},
        "DataLoader.Train.dataset.transform_ops": _train_ops(
            {"RandAugment": {"num_layers": 2, "magnitude": 5}},
            {"RandAugmentV2": {"num_layers": 2, "magnitude": 9, "progress_magnitude": [5, 8, 11, 15]}},
            {"RandAugmentV3": {"num_layers": 2, "interpolation": "bicubic"}},
            after=[{"GridMask": {"d1": 8, "d2": 24, "rotate": 1, "ratio": 0.5, "mode": 0}},
                   {"HideAndSeek": {}}]),
    },
    "adam_linear_pil_backends_fp16_input": {
        "Optimizer": {"name": "Adam", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "lazy_mode": False,
                      "lr": {"name": "Linear", "learning_rate": 1e-3, "end_lr": 0.0, "power": 1.0,
                             "warmup_epoch": 1}},
        "DataLoader.Train.dataset.transform_ops": [
            {"DecodeImage": {"to_rgb": True, "channel_first": False, "to_np": False, "backend": "pil"}},
            {"RandCropImage": {"size": 32, "scale": [0.5, 1.0], "interpolation": "random", "backend": "pil",
                               "use_log_aspect": True, "progress_size": [24, 28, 32]}},
            {"RandFlipImage": {"flip_code": 1}},
            {"NormalizeImage": {"scale": 1.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "order": "",
                                "output_fp16": True, "channel_num": 3}}],
        "DataLoader.Eval.dataset.transform_ops": [
            {"DecodeImage": {"to_rgb": True, "channel_first": False, "backend": "pil"}},
            {"ResizeImage": {"resize_short": 36, "interpolation": "bicubic", "backend": "pil"}},
            {"CropImageAtRatio": {"size": 32, "pad": 4, "interpolation": "bilinear"}},
            {"NormalizeImage": {"scale": 0.00392157, "mean": [0.485, 0.456, 0.406],
                                "std": [0.229, 0.224, 0.225], "order": ""}}],
        "Global.eval_during_train": True,
    },
    "four_channel_input_and_global_class_num": {
        "Global.image_channel": 4, "Global.image_shape": [4, 32, 32], "Global.class_num": 10,
        "Arch": {"name": "MixFormer_B0", "in_chans": 4, "window_size": 4, "last_dim": 32},
        "DataLoader.Train.dataset.transform_ops.3.NormalizeImage.channel_num": 4,
        "Optimizer.lr": {"name": "ConstLR", "learning_rate": 0.01, "warmup_epoch": 1},
    },
    "multiscale_dataset_and_sampler": {
        "DataLoader.Train.dataset.name": "MultiScaleDataset",
        "DataLoader.Train.sampler": {"name": "MultiScaleSampler", "scales": [32, 24, 40], "first_bs": 4,
                                     "divided_factor": 8, "is_training": True},
        "Optimizer.lr": {"name": "Constant", "learning_rate": 0.01},
    },
    "ra_sampler_update_freq": {
        "DataLoader.Train.sampler": {"name": "RASampler", "batch_size": 2, "drop_last": True, "shuffle": True,
                                     "num_repeats": 3},
        "Global.update_freq": 2, "Global.iter_per_epoch": 2,
    },
    "distillation_every_logit_loss": {
        "Arch": {"name": "DistillationModel", "class_num": 10, "freeze_params_list": [True, False],
                 "pretrained_list": None, "infer_model_name": "Student",
                 # a MixFormer teacher for a DualFormer student (the quicker one to export)
                 "models": [{"Teacher": dict(TINY_ARCH, pretrained=False)},
                            {"Student": {"name": "DualFormer_T", "class_num": 10}}]},
        "Loss.Train": [
            {"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}},
            {"DistillationCELoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}},
            {"DistillationKLDivLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]],
                                       "temperature": 4}},
            {"DistillationDMLLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}},
            {"DistillationDKDLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]],
                                     "temperature": 1, "alpha": 1.0, "beta": 1.0}},
            {"DistillationDISTLoss": {"weight": 2.0, "model_name_pairs": [["Student", "Teacher"]]}},
            {"DistillationSKDLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]],
                                     "temperature": 1.0, "multiplier": 2.0, "alpha": 0.9}},
            {"DistillationWSLLoss": {"weight": 2.5, "model_name_pairs": [["Student", "Teacher"]],
                                     "temperature": 2}},
            {"DistillationDistanceLoss": {"weight": 1.0, "mode": "l2", "model_name_pairs": [["Student", "Teacher"]],
                                          "act": "softmax"}}],
        "Metric.Train": [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}],
        "Metric.Eval": [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}],
        "Global.eval_during_train": True,
    },
    # DualFormer-T: the quickest of the families to trace (about 11 s against MixFormer-B0's 32 s)
    "to_static_training": {"Global.to_static": True, "Arch": {"name": "DualFormer_T", "class_num": 10}},
}


def _case_config(name, digits, tmp_path):
    cfg = paddleclas_config(digits, tmp_path)
    for key, value in CASES[name].items():
        _set(cfg, key, copy.deepcopy(value))
    return cfg


def _train_one_step(cfg):
    """Validate, build and train ``cfg`` (one update); check that weights moved."""
    validate_config(copy.deepcopy(cfg))
    engine = Engine(cfg, mode="train")
    before = {k: v.numpy().copy() for k, v in engine.model.state_dict().items()}
    engine.train()
    after = engine.model.state_dict()
    changed = [k for k in before if not np.array_equal(before[k], after[k].numpy())]
    assert changed, "one training step changed no weight"
    assert engine.global_step >= 1
    assert os.path.isfile(os.path.join(engine.output_dir, "latest.pdparams"))
    return engine


#: cases trained by their own tests below (which check more than one step)
DEDICATED = ("distillation_every_logit_loss", "four_channel_input_and_global_class_num")


@pytest.mark.parametrize("name", sorted(set(CASES) - set(DEDICATED)))
def test_paddleclas_style_config_validates_and_trains_one_step(name, digits, tmp_path):
    _train_one_step(_case_config(name, digits, tmp_path))


def test_distillation_teacher_stays_frozen_and_export_is_the_student(digits, tmp_path):
    cfg = _case_config("distillation_every_logit_loss", digits, tmp_path)
    teacher_before = Engine(copy.deepcopy(cfg), mode="export").model.Teacher.state_dict()
    teacher = {k: v.numpy().copy() for k, v in teacher_before.items()}
    engine = _train_one_step(cfg)
    assert not engine.model.Teacher.training  # eval mode: BatchNorm statistics unchanged
    for k, v in engine.model.Teacher.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), teacher[k], err_msg=k)
    log = open(os.path.join(engine.output_dir, "train.log")).read()
    for term in ("CELoss_Student", "CELoss_Student_Teacher", "loss_kldiv_Student_Teacher",
                 "DMLLoss_Student_Teacher_0", "loss_dkd_Student_Teacher", "loss_dist_Student_Teacher",
                 "skd_loss_Student_Teacher", "wsl_loss_Student_Teacher", "loss_l2_loss_l2_0"):
        assert term in log, term
    export_cfg = _case_config("distillation_every_logit_loss", digits, tmp_path)
    export_cfg["Global"]["pretrained_model"] = os.path.join(engine.output_dir, "latest")
    exporter = Engine(export_cfg, mode="export")
    prefix = exporter.export()
    from ppvision_hybrid.inference import create_predictor
    x = np.random.RandomState(0).randn(2, 3, 32, 32).astype("float32")
    got = create_predictor(os.path.dirname(prefix), enable_mkldnn=False)(x)
    student = exporter.model.Student
    student.eval()
    ref = paddle.nn.functional.softmax(student(paddle.to_tensor(x)), axis=-1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_print_mem_info_log_ranks_and_deprecated_class_num(digits, tmp_path):
    cfg = _case_config("four_channel_input_and_global_class_num", digits, tmp_path)
    cfg["Global"]["print_mem_info"] = True
    engine = _train_one_step(cfg)
    log = open(os.path.join(engine.output_dir, "train.log")).read()
    assert "max_rss:" in log and "Global.class_num is deprecated" in log
    assert engine.model.in_chans == 4


# ---- refusals: a feature this engine does not implement is named ---------------------------

@pytest.mark.parametrize("key, value, message", [
    ("Global.use_dali", True, "DALI"),
    ("Global.train_mode", "progressive", "progressive training"),
    ("Global.eval_mode", "retrieval", "retrieval"),
    ("Global.device", "xpu", "'xpu' is not supported"),
    ("Global.update_freq", 0, "positive integer"),
    ("Loss.Train", [{"GoogLeNetLoss": {"weight": 1.0}}], "GoogLeNetLoss is not supported.*three auxiliary heads"),
    ("Loss.Train", [{"AFDLoss": {"weight": 1.0}}], "AFDLoss is not supported.*feature"),
    ("Loss.Train", [{"DistillationPairLoss": {"weight": 1.0}}], "DistillationPairLoss is not supported"),
    ("Metric.Eval", [{"GoogLeNetTopkAcc": {"topk": [1, 5]}}], "GoogLeNetTopkAcc is not supported"),
    ("Arch.use_ml_decoder", True, "ML-Decoder"),
    ("Optimizer.lr", {"name": "Constant", "learning_rate": 0.1, "warmup_epoch": 5}, "ConstLR"),
    ("Optimizer.lr", {"name": "Cosine", "learning_rate": 0.1, "warmup_epochs": 5},
     "Did you mean 'warmup_epoch'"),
    ("DataLoader.Train.dataset.transform_ops", [{"RandomCropImage": {"size": 32}}],
     "Did you mean 'RandCropImage'"),
    ("DataLoader.Train.sampler", {"name": "MultiScaleSampler", "scales": [32], "first_bs": 2},
     "MultiScaleSampler and MultiScaleDataset go together"),
    ("Global.uniform_output_enabled", True, "PaddleX"),
])
def test_unsupported_features_are_refused_by_name(key, value, message, digits, tmp_path):
    cfg = paddleclas_config(digits, tmp_path)
    _set(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_timm_auto_augment_policies_other_than_rand_are_refused():
    from ppvision_hybrid.data.transforms import TimmAutoAugment
    with pytest.raises(ValueError, match="AutoAugment and AugMix policies are not implemented"):
        TimmAutoAugment(config_str="augmix-m5-w3")
    img = np.zeros((8, 8, 3), np.uint8)
    assert TimmAutoAugment(config_str=None)(img) is img  # null: identity (PaddleClas fails on it)


# ---- behaviour: gradient accumulation, clipping, optimizers, LR ----------------------------

class _Linear(paddle.nn.Layer):
    """No batch statistics: a mean over 32 equals the mean of four means over 8."""

    def __init__(self, class_num):
        super().__init__()
        self.fc = paddle.nn.Linear(3 * 32 * 32, class_num)
        self.class_num = class_num

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_update_freq_4_at_batch_8_equals_batch_32(digits, tmp_path, monkeypatch):
    """Through the engine's own loop: 4 accumulated batches of 8 give the same AdamW update as
    one batch of 32 (the same 32 images, no random augmentation), within fp32 tolerance."""
    import ppvision_hybrid.engine.engine as engine_module

    def fake_build(arch):
        paddle.seed(0)
        return _Linear(int(arch["class_num"]))
    monkeypatch.setattr(engine_module, "build_model_from_config", fake_build)
    weights = []
    for batch, freq in ((8, 4), (32, 1)):
        cfg = paddleclas_config(digits, tmp_path / f"b{batch}")
        cfg["DataLoader"]["Train"]["dataset"]["transform_ops"] = _eval_ops()
        cfg["DataLoader"]["Train"]["sampler"].update(batch_size=batch, shuffle=False)
        cfg["Global"].update(update_freq=freq, iter_per_epoch=32 // batch)
        cfg["Loss"]["Train"] = [{"CELoss": {"weight": 1.0}}]
        cfg["Optimizer"] = {"name": "AdamW", "weight_decay": 0.05, "lr": {"name": "Cosine", "learning_rate": 0.01}}
        engine = Engine(cfg, mode="train")
        engine.train()
        assert engine.global_step == 1
        weights.append(engine.model.fc.weight.numpy())
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-5, atol=1e-7)


def _grads(model, value):
    for p in model.parameters():
        p.grad = paddle.full(p.shape, value)


def test_clip_norm_per_tensor_clip_global_norm_and_clip_grad_not_applied():
    model = paddle.nn.Linear(4, 4)  # weight: 16 values, bias: 4
    before = [p.numpy().copy() for p in model.parameters()]
    opt, _, _ = build_optimizer({"name": "Momentum", "momentum": 0.0, "lr": 1.0, "clip_norm": 1.0}, model, 1, 1)
    assert isinstance(opt._grad_clip, paddle.nn.ClipGradByNorm)
    _grads(model, 10.0)
    opt.step()
    deltas = [np.linalg.norm(p.numpy() - b) for p, b in zip(model.parameters(), before)]
    np.testing.assert_allclose(deltas, [1.0, 1.0], rtol=1e-4)  # each tensor to norm 1 (global: sqrt(2) total)
    model = paddle.nn.Linear(4, 4)
    before = [p.numpy().copy() for p in model.parameters()]
    opt, _, _ = build_optimizer({"name": "Momentum", "momentum": 0.0, "lr": 1.0, "clip_global_norm": 1.0},
                                model, 1, 1)
    _grads(model, 10.0)
    opt.step()
    total = np.sqrt(sum(((p.numpy() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert total == pytest.approx(1.0, rel=1e-4)  # all tensors together to norm 1
    with pytest.raises(ValueError, match="keep one"):
        build_optimizer({"name": "AdamW", "lr": 1.0, "clip_norm": 1.0, "clip_global_norm": 1.0}, model, 1, 1)
    model = paddle.nn.Linear(4, 4)
    with pytest.warns(UserWarning, match="clip_grad=5.0 is not applied"):
        opt, _, _ = build_optimizer({"name": "AdamW", "clip_grad": 5.0, "lr": 1.0, "weight_decay": 0.0}, model, 1, 1)
    assert opt._grad_clip is None


def test_coupled_and_decoupled_weight_decay():
    """Momentum/RMSProp/SGD: weight_decay is an L2 term in the gradient (lr * wd * w with a zero
    gradient); AdamW: decoupled; regularizer wins over weight_decay."""
    for name, extra in (("Momentum", {"momentum": 0.0}), ("SGD", {}), ("RMSProp", {"rho": 0.0, "epsilon": 0.0})):
        model = paddle.nn.Linear(2, 2, bias_attr=False)
        w0 = model.weight.numpy().copy()
        opt, _, _ = build_optimizer(dict(name=name, lr=0.5, weight_decay=0.1, **extra), model, 1, 1)
        _grads(model, 0.0)
        opt.step()
        if name == "RMSProp":  # update lr * g / sqrt(g^2) = lr * sign(g) with g = wd * w
            np.testing.assert_allclose(model.weight.numpy(), w0 - 0.5 * np.sign(w0), rtol=1e-5)
        else:
            np.testing.assert_allclose(model.weight.numpy(), w0 * (1 - 0.5 * 0.1), rtol=1e-6)
    model = paddle.nn.Linear(2, 2, bias_attr=False)
    w0 = model.weight.numpy().copy()
    with pytest.warns(UserWarning, match="weight_decay is ignored"):
        opt, _, _ = build_optimizer({"name": "Momentum", "momentum": 0.0, "lr": 0.1, "weight_decay": 0.5,
                                     "regularizer": {"name": "L2", "coeff": 1e-2}}, model, 1, 1)
    _grads(model, 0.0)
    opt.step()
    np.testing.assert_allclose(model.weight.numpy(), w0 * (1 - 0.1 * 1e-2), rtol=1e-6)


def test_momentum_one_dim_no_decay_needs_names_as_in_paddleclas():
    model = paddle.nn.Sequential(paddle.nn.Linear(3, 3), paddle.nn.LayerNorm(3))
    with pytest.warns(UserWarning, match="ignored for Momentum"):
        _, _, groups = build_optimizer({"name": "Momentum", "momentum": 0.9, "lr": 0.1, "weight_decay": 1e-4,
                                        "one_dim_param_no_weight_decay": True}, model, 1, 1)
    assert groups["no_decay"] == []
    _, _, groups = build_optimizer({"name": "Momentum", "momentum": 0.9, "lr": 0.1, "weight_decay": 1e-4,
                                    "no_weight_decay_name": "1.", "one_dim_param_no_weight_decay": True},
                                   model, 1, 1)
    assert sorted(groups["no_decay"]) == ["0.bias", "1.bias", "1.weight"]


def test_lr_schedules_follow_paddleclas():
    # Piecewise with learning_rate: 10x every 30 epochs, whatever decay_epochs/values say
    with pytest.warns(UserWarning, match="10x every 30 epochs"):
        pw = build_lr({"name": "Piecewise", "learning_rate": 0.1, "decay_epochs": [1], "values": [9, 9]}, 120, 2)
    assert [pw.lr_at(e * 2) for e in (0, 29, 30, 59, 60, 90, 119)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.0001, 0.0001])
    # decay boundaries count from the end of the warmup (PaddleClas's LinearWarmup)
    pw = build_lr({"name": "Piecewise", "decay_epochs": [2], "values": [1.0, 0.1], "warmup_epoch": 1,
                   "warmup_start_lr": 0.0}, 10, 4)
    assert pw.lr_at(2) == pytest.approx(0.5) and pw.lr_at(4) == 1.0
    assert pw.lr_at(4 + 7) == 1.0 and pw.lr_at(4 + 8) == pytest.approx(0.1)
    ms = build_lr({"name": "MultiStepDecay", "learning_rate": 1.0, "milestones": [1, 3], "gamma": 0.5}, 4, 2)
    assert [ms.lr_at(i) for i in range(8)] == pytest.approx([1, 1, .5, .5, .5, .5, .25, .25])
    lin = build_lr({"name": "Linear", "learning_rate": 1.0, "end_lr": 0.2, "power": 2.0}, 2, 5)
    assert lin.lr_at(0) == 1.0 and lin.lr_at(5) == pytest.approx(0.2 + 0.8 * 0.25) and lin.lr_at(10) == pytest.approx(0.2)
    with pytest.warns(UserWarning, match="warmup cut to 2 epochs"):
        cut = build_lr({"name": "Cosine", "learning_rate": 1.0, "warmup_epoch": 5}, 2, 10)
    assert cut.warmup_steps == 20 and cut.lr_at(10) == pytest.approx(0.5)
    step = build_lr({"name": "Step", "learning_rate": 1.0, "step_size": 2.5, "gamma": 0.5}, 10, 2)
    assert step.lr_at(4) == 1.0 and step.lr_at(5) == 0.5  # step every int(2.5 * 2) = 5 updates
    const = build_lr({"name": "ConstLR", "learning_rate": 0.2, "warmup_epoch": 1, "warmup_start_lr": 0.0}, 3, 4)
    assert const.lr_at(2) == pytest.approx(0.1) and const.lr_at(9) == 0.2
    cos = build_lr({"name": "Cosine", "learning_rate": 1.0, "by_epoch": True, "eta_min": 0.0}, 4, 10)
    assert cos.lr_at(19) == cos.lr_at(10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_rmsprop_and_adam_are_paddles():
    model = paddle.nn.Linear(2, 2)
    opt, _, _ = build_optimizer({"name": "RMSProp", "momentum": 0.9, "rho": 0.8, "epsilon": 1e-3, "lr": 0.1},
                                model, 1, 1)
    assert isinstance(opt, paddle.optimizer.RMSProp) and opt._rho == 0.8 and opt._momentum == 0.9
    opt, _, _ = build_optimizer({"name": "Adam", "lr": 0.1, "lazy_mode": True}, model, 1, 1)
    assert isinstance(opt, paddle.optimizer.Adam) and not isinstance(opt, paddle.optimizer.AdamW)
