"""ppvision_hybrid.predict (deploy/python/predict_cls.py's predictor) as PaddleClas's predictor: PaddleClas's own inference_cls.yaml
read unchanged, list-index overrides, unknown keys refused, ONNX Runtime with use_onnx, the
benchmark report and save_log_path, use_int8 / use_tensorrt refused with the reason, and the
export's inference.yml (pre-processing and class names).

Model: a three-layer network exported with ``export_inference_model`` (dynamic H/W, softmax),
so every check runs in seconds."""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import yaml

from conftest import ROOT
from ppvision_hybrid.export import export_inference_model
from ppvision_hybrid.inference_yml import default_transforms
from ppvision_hybrid import predict as predict_cls

#: PaddleClas's deploy/configs/inference_cls.yaml (develop), key for key
PADDLECLAS_INFERENCE_CLS = """
Global:
  infer_imgs: "./images/ImageNet/ILSVRC2012_val_00000010.jpeg"
  inference_model_dir: "./models"
  batch_size: 1
  use_gpu: True
  enable_mkldnn: True
  cpu_num_threads: 10
  enable_benchmark: True
  use_fp16: False
  ir_optim: True
  use_tensorrt: False
  gpu_mem: 8000
  enable_profile: False

PreProcess:
  transform_ops:
    - ResizeImage:
        resize_short: 256
    - CropImage:
        size: 224
    - NormalizeImage:
        scale: 0.00392157
        mean: [0.485, 0.456, 0.406]
        std: [0.229, 0.224, 0.225]
        order: ""
        channel_num: 3
    - ToCHWImage:

PostProcess:
  main_indicator: Topk
  Topk:
    topk: 5
    class_id_map_file: "../ppcls/utils/imagenet1k_label_list.txt"
  SavePreLabel:
    save_dir: ./pre_label/
"""


class _Tiny(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, stride=2, padding=1)
        self.fc = paddle.nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(paddle.nn.functional.relu(self.conv(x)).mean([2, 3]))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    paddle.seed(0)
    model = _Tiny()
    names = ["cat", "dog", "owl", "eel", "fox"]
    export_inference_model(model, str(root / "model"), (3, 32, 32), with_softmax=True, dynamic_hw=True,
                           infer_config={"transforms": default_transforms((3, 32, 32)), "topk": 3,
                                         "label_list": names, "model_name": "Tiny"})
    images = root / "images"
    images.mkdir()
    rng = np.random.RandomState(0)
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), rng.randint(0, 255, (40 + 8 * i, 48, 3)).astype(np.uint8))
    (root / "inference_cls.yaml").write_text(PADDLECLAS_INFERENCE_CLS)
    return root, model, names


def _run(capsys, *argv):
    code = predict_cls.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _lines(out):
    return [line for line in out.splitlines() if "class id(s)" in line]


def test_paddleclas_yaml_unchanged_with_list_index_overrides(workspace, capsys, monkeypatch):
    root, model, _ = workspace
    monkeypatch.chdir(root)
    code, out, err = _run(capsys, "-c", str(root / "inference_cls.yaml"),
                          "-o", f"Global.inference_model_dir={root / 'model'}", "-o", f"Global.infer_imgs={root / 'images'}",
                          "-o", "Global.use_gpu=False", "-o", "Global.cpu_num_threads=1",
                          "-o", "PreProcess.transform_ops.0.ResizeImage.resize_short=36",
                          "-o", "PreProcess.transform_ops.1.CropImage.size=32")
    assert code == 0 and len(_lines(out)) == 3
    assert "enable_benchmark has no effect" in err and "imagenet1k_label_list.txt not found" in err
    # SavePreLabel copied each image under its top-1 class id
    assert sorted(p.name for p in (root / "pre_label").rglob("*.png")) == ["0.png", "1.png", "2.png"]
    # the scores are the model's on the overridden pre-processing (short side 36, crop 32)
    config = predict_cls.apply_overrides(yaml.safe_load(PADDLECLAS_INFERENCE_CLS),
                                         ["PreProcess.transform_ops.0.ResizeImage.resize_short=36",
                                          "PreProcess.transform_ops.1.CropImage.size=32"])
    ops = predict_cls.build_transforms(config["PreProcess"]["transform_ops"])
    x = predict_cls.preprocess(str(root / "images" / "0.png"), ops)
    assert x.shape == (3, 32, 32)
    probs = paddle.nn.functional.softmax(model(paddle.to_tensor(x[None])), -1).numpy()[0]
    line = next(line for line in _lines(out) if "0.png" in line)
    assert f"class id(s): {np.argsort(-probs)[:5].tolist()}" in line
    with pytest.raises(predict_cls.ConfigError, match="list index below 4"):
        predict_cls.apply_overrides(yaml.safe_load(PADDLECLAS_INFERENCE_CLS),
                                    ["PreProcess.transform_ops.7.CropImage.size=32"])


@pytest.mark.parametrize("override, message", [
    ("Global.bogus_key=1", "unknown config key 'Global.bogus_key'"),
    ("Global.use_onxx=True", "Did you mean 'use_onnx'"),
    ("PostProcess.Topk.top_k=3", "Did you mean 'topk'"),
    ("PreProcess.transform_ops.0.ResizeImage.resize_shrt=3", "Did you mean 'resize_short'"),
    ("Global.use_xpu=True", "Kunlun XPU devices are not supported"),
    ("Global.use_int8=True", "use_int8.*no int8 model"),
    ("Global.use_tensorrt=True", "use_tensorrt: TensorRT needs Global.use_gpu=True on a CUDA build"),
])
def test_bad_keys_and_unavailable_precisions_are_refused(workspace, capsys, override, message):
    root, _, _ = workspace
    with pytest.raises(SystemExit) as info:
        predict_cls.main(["--model_dir", str(root / "model"), "--infer_imgs", str(root / "images"), "-o", override])
    assert info.value.code == 2
    err = capsys.readouterr().err
    import re
    assert re.search(message, err) and err.count("error:") == 1 and "Traceback" not in err, err


def test_inference_yml_gives_preprocessing_and_names(workspace, capsys):
    root, model, names = workspace
    code, out, err = _run(capsys, "--model_dir", str(root / "model"), "--infer_imgs", str(root / "images" / "1.png"),
                          "--cpu_threads", "1", "--enable_mkldnn", "False")
    assert code == 0 and "pre-processing from the model's inference.yml" in err
    (line,) = _lines(out)
    assert "label_name(s): [" in line and all(n in names for n in eval(line.split("label_name(s): ")[1]))
    assert len(eval(line.split("class id(s): ")[1].split("]")[0] + "]")) == 3  # the yml's topk
    # an explicit PreProcess wins, with a note when its crop differs from the export's
    cfg = root / "crop224.yaml"
    cfg.write_text(yaml.safe_dump({"Global": {"batch_size": 1}, "PreProcess": {"transform_ops": [
        {"ResizeImage": {"resize_short": 256}}, {"CropImage": {"size": 224}},
        {"NormalizeImage": {"order": ""}}, {"ToCHWImage": None}]}}))
    code, out, err = _run(capsys, "-c", str(cfg), "--model_dir", str(root / "model"),
                          "--infer_imgs", str(root / "images" / "1.png"), "--cpu_threads", "1")
    assert code == 0 and "crops/resizes to 224 but the model was exported with 32" in err


def test_benchmark_report_and_save_log_path(workspace, capsys, tmp_path):
    root, _, _ = workspace
    log = tmp_path / "logs" / "bench.log"
    code, out, _ = _run(capsys, "--model_dir", str(root / "model"), "--infer_imgs", str(root / "images"),
                        "--cpu_threads", "1", "--benchmark", "--warmup", "1", "--repeats", "2",
                        "-o", f"Global.save_log_path={log}")
    assert code == 0
    report = log.read_text()
    for field in ("runtime_device: cpu", "ir_optim: True", "enable_mkldnn: True", "cpu_math_library_num_threads: 1",
                  "model_name: Tiny", "precision: fp32", "batch_size: 1", "input_shape: [3, 32, 32]",
                  "data_num: 3", "cpu_rss(MB):", "total time spent(s):", "preprocess_time(ms):",
                  "inference_time(ms):", "postprocess_time(ms):"):
        assert field in report and field in out, field
    assert "[benchmark]" in out and "p50" in out
    plain = tmp_path / "predictions.log"
    code, out, _ = _run(capsys, "--model_dir", str(root / "model"), "--infer_imgs", str(root / "images"),
                        "--cpu_threads", "1", "--save_log_path", str(plain))
    assert plain.read_text().splitlines() == _lines(out)


def test_use_onnx_runs_onnx_runtime_on_inference_onnx(workspace, capsys):
    root, _, _ = workspace
    with pytest.raises(SystemExit) as info:
        predict_cls.main(["--model_dir", str(root / "model"), "--infer_imgs", str(root / "images"), "--use_onnx"])
    assert info.value.code == 2 and "tools/export_onnx.py --model_dir" in capsys.readouterr().err
    pytest.importorskip("paddle2onnx", reason="optional: requirements-deploy.txt")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_onnx.py"), "--model_dir",
                           str(root / "model"), "--save_file", str(root / "model" / "inference.onnx"),
                           "--verify_shapes", "1x3x32x32"], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    args = ["--model_dir", str(root / "model"), "--infer_imgs", str(root / "images"), "--cpu_threads", "1"]
    _, paddle_out, _ = _run(capsys, *args)
    code, onnx_out, _ = _run(capsys, *args, "-o", "Global.use_onnx=True", "--benchmark", "--warmup", "1",
                             "--repeats", "2")
    assert code == 0 and "ONNX Runtime" in onnx_out and "runtime_device: cpu (onnxruntime)" in onnx_out
    for a, b in zip(_lines(paddle_out), _lines(onnx_out)):
        assert a.split("score")[0] == b.split("score")[0]  # same files, same classes
        sa = np.array(eval(a.split("score(s): ")[1].split("]")[0] + "]"))
        sb = np.array(eval(b.split("score(s): ")[1].split("]")[0] + "]"))
        np.testing.assert_allclose(sa, sb, rtol=1e-3, atol=1e-5)


def test_deploy_and_engine_share_the_eval_ops(workspace):
    """The predictor's pre-processing is the engine's evaluation ops (one implementation): the
    same classes, and PaddleClas's inference_cls.yaml pipeline gives the same array both ways."""
    from ppvision_hybrid import preprocess
    from ppvision_hybrid.data import transforms
    for name, op in preprocess.EVAL_OPS.items():
        assert transforms.TRANSFORM_OPS[name] is op
    root = workspace[0]
    op_list = yaml.safe_load(PADDLECLAS_INFERENCE_CLS)["PreProcess"]["transform_ops"]
    path = str(root / "images" / "0.png")
    deployed = predict_cls.preprocess(path, predict_cls.build_transforms(op_list))
    with open(path, "rb") as f:
        engine = transforms.apply_transforms(f.read(), transforms.build_transforms(
            [{"DecodeImage": {"to_rgb": True, "channel_first": False}}] + op_list))
    assert deployed.dtype == engine.dtype == np.float32 and deployed.shape == engine.shape
    np.testing.assert_array_equal(deployed, engine)
