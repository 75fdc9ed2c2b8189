"""Bad inputs to every tool and to the Python API: each case asserts the exit status (2 for usage,
config and input-file errors, 1 for failures while working), that the message names the problem
(the key, file or argument), that stderr holds one ``error:`` line and no traceback, and that no
file was written or lost (a run's ``.log`` aside).

The tools run in-process through their ``main(argv)`` (each costs milliseconds, not a paddle
import); three subprocesses check the real process: one line, exit status, no third-party noise,
and the traceback with ``--debug`` / ``PPVH_DEBUG=1``."""
import copy
import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import yaml

from conftest import ROOT
from ppvision_hybrid.cli_errors import DataError, ModelArgumentError, format_error
from ppvision_hybrid.export import export_inference_model
from ppvision_hybrid.inference_yml import default_transforms

DEMO = os.path.join(ROOT, "configs", "demo", "MixFormer_B0_digits.yaml")


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOLS = {name: _load(os.path.join(ROOT, "tools", f"{name}.py"), f"bad_inputs_{name}")
         for name in ("train", "eval", "infer", "export_model")}
TOOLS["predict_cls"] = _load(os.path.join(ROOT, "deploy", "python", "predict_cls.py"), "bad_inputs_predict")


# ---- workspace ------------------------------------------------------------------------------
def _tiny_classifier():
    nn = paddle.nn
    return nn.Sequential(nn.Conv2D(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2D(1),
                         nn.Flatten(), nn.Linear(4, 3))


def _write_list(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Six 32x32 images in two classes, their lists, a config on them (MixFormer-B0, window 4,
    last_dim 32), a bad image, and a good export of a three-layer model."""
    root = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.RandomState(0)
    images = root / "images"
    for c in range(2):
        (images / str(c)).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(images / str(c) / f"{i}.png"), rng.randint(0, 255, (32, 32, 3)).astype(np.uint8))
    (root / "broken").mkdir()
    (root / "broken" / "bad.png").write_bytes(b"not a png at all")
    good = [f"{c}/{i}.png {c}" for c in range(2) for i in range(3)]
    lists = {"train": _write_list(root / "train_list.txt", good)}
    config = yaml.safe_load(open(DEMO, encoding="utf-8"))
    config["Global"].update(output_dir=str(root / "output"), epochs=1, eval_during_train=False,
                            print_batch_step=1)
    config["Arch"]["last_dim"] = 32
    config["Optimizer"]["lr"]["warmup_epoch"] = 0
    for mode in ("Train", "Eval"):
        ds = config["DataLoader"][mode]["dataset"]
        ds.update(image_root=str(images), cls_label_path=lists["train"])
        config["DataLoader"][mode]["sampler"].update(batch_size=2, shuffle=False)
    config["Infer"]["infer_imgs"] = str(images)
    config["Infer"]["PostProcess"]["class_id_map_file"] = None
    import ppvision_hybrid as pvh  # eval and infer get weights (a run without them is refused)
    paddle.seed(0)
    model = pvh.create_model("MixFormer_B0", class_num=10, window_size=4, last_dim=32)
    paddle.save(model.state_dict(), str(root / "weights.pdparams"))
    config["Global"]["pretrained_model"] = str(root / "weights")
    cfg_path = root / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    paddle.seed(0)
    export_inference_model(_tiny_classifier(), str(root / "model"), (3, 32, 32), with_softmax=True, dynamic_hw=True,
                           infer_config={"transforms": default_transforms((3, 32, 32)), "topk": 2,
                                         "label_list": ["a", "b", "c"], "model_name": "Tiny"})
    return {"root": root, "images": images, "config": str(cfg_path), "base": config}


def _config_with(ws, name, edit):
    """A copy of the workspace config changed by ``edit(config)``, written as ``name``."""
    config = copy.deepcopy(ws["base"])
    edit(config)
    path = ws["root"] / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def _snapshot(root):
    """{relative path: (size, mtime)} of every file under ``root`` except logs."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if not name.endswith(".log"):
                path = os.path.join(folder, name)
                st = os.stat(path)
                files[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return files


def run_tool(tool, argv, capsys, root, expect_files=()):
    """Run ``tool``'s main in-process; (exit status, stdout, stderr). Checks that no file under
    ``root`` was written, changed or removed (apart from logs and ``expect_files``)."""
    capsys.readouterr()
    before = _snapshot(root)
    try:
        code = TOOLS[tool].main(list(argv)) or 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    after = _snapshot(root)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)} - set(expect_files)
    assert not changed, f"files written or lost: {sorted(changed)}"
    return code, out.out, out.err


def assert_one_error_line(code, err, status, *needles):
    """Exit ``status``; stderr has exactly one ``error:`` line holding every needle, no traceback."""
    assert code == status, (code, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---- tools/train.py, eval.py, infer.py: the config -----------------------------------------
CONFIG_CASES = [
    # (id, tool, -o overrides, exit status, needles)
    ("unknown_global_key", "train", ["Global.epoch=2"], 2, ["Global.epoch", "Did you mean 'epochs'"]),
    ("epochs_not_a_number", "train", ["Global.epochs=abc"], 2, ["Global.epochs", "'abc'"]),
    ("epochs_fraction", "train", ["Global.epochs=1.5"], 2, ["Global.epochs", "integer"]),
    ("batch_size_zero", "train", ["DataLoader.Train.sampler.batch_size=0"], 2,
     ["DataLoader.Train.sampler.batch_size", ">= 1"]),
    ("batch_size_negative", "eval", ["DataLoader.Eval.sampler.batch_size=-3"], 2,
     ["DataLoader.Eval.sampler.batch_size"]),
    ("batch_size_text", "train", ["DataLoader.Train.sampler.batch_size=big"], 2,
     ["DataLoader.Train.sampler.batch_size", "'big'"]),
    ("num_workers_negative", "train", ["DataLoader.Train.loader.num_workers=-1"], 2,
     ["DataLoader.Train.loader.num_workers"]),
    ("save_interval_zero", "train", ["Global.save_interval=0"], 2, ["Global.save_interval"]),
    ("print_batch_step_zero", "eval", ["Global.print_batch_step=0"], 2, ["Global.print_batch_step"]),
    ("seed_text", "train", ["Global.seed=abc"], 2, ["Global.seed"]),
    ("class_num_text", "train", ["Arch.class_num=ten"], 2, ["Arch.class_num"]),
    ("class_num_negative", "eval", ["Arch.class_num=-1"], 2, ["Arch.class_num"]),
    ("learning_rate_text", "train", ["Optimizer.lr.learning_rate=fast"], 2, ["Optimizer.lr.learning_rate"]),
    ("learning_rate_negative", "train", ["Optimizer.lr.learning_rate=-0.1"], 2, ["Optimizer.lr.learning_rate"]),
    ("unknown_model", "train", ["Arch.name=MixFormer_B9"], 2, ["MixFormer_B9", "Did you mean"]),
    ("unknown_model_kwarg", "eval", ["Arch.not_a_kwarg=1"], 2, ["not_a_kwarg"]),
    ("drop_path_rate_2", "train", ["Arch.drop_path_rate=2.0"], 2, ["drop_path_rate=2.0", "[0, 1)"]),
    ("window_size_zero", "eval", ["Arch.window_size=0"], 2, ["window_size=0"]),
    ("unknown_device", "train", ["Global.device=tpu"], 2, ["Global.device"]),
    ("refused_device", "eval", ["Global.device=npu"], 2, ["Global.device", "not supported"]),
    ("override_without_equals", "train", ["Global.epochs"], 2, ["Section.key=value"]),
    ("override_list_index", "train", ["DataLoader.Train.dataset.transform_ops.9.ResizeImage.size=3"], 2,
     ["list index"]),
    ("unknown_optimizer", "train", ["Optimizer.name=Adamax"], 2, ["Optimizer.name", "Adamax"]),
    ("unknown_transform", "train", ["DataLoader.Train.dataset.transform_ops.1={Blur: {}}"], 2,
     ["unknown op 'Blur'"]),
    ("unknown_section", "eval", ["Slim.prune=1"], 2, ["Slim"]),
    ("topk_text", "infer", ["Infer.PostProcess.topk=many"], 2, ["Infer.PostProcess.topk"]),
    ("infer_batch_zero", "infer", ["Infer.batch_size=0"], 2, ["Infer.batch_size"]),
    ("image_root_missing", "train", ["DataLoader.Train.dataset.image_root=/no/such/root"], 2,
     ["/no/such/root"]),
    ("label_list_missing", "eval", ["DataLoader.Eval.dataset.cls_label_path=/no/such/list.txt"], 2,
     ["/no/such/list.txt"]),
    ("pretrained_missing", "eval", ["Global.pretrained_model=/no/such/weights"], 2, ["/no/such/weights"]),
    ("infer_imgs_missing", "infer", ["Infer.infer_imgs=/no/such/images"], 2, ["Infer.infer_imgs", "/no/such/images"]),
    ("class_id_map_missing", "infer", ["Infer.PostProcess.class_id_map_file=/no/such/labels.txt"], 2,
     ["/no/such/labels.txt"]),
]


@pytest.mark.parametrize("tool, overrides, status, needles",
                         [case[1:] for case in CONFIG_CASES], ids=[case[0] for case in CONFIG_CASES])
def test_config_errors_are_one_line_naming_the_key(ws, capsys, tool, overrides, status, needles):
    argv = ["-c", ws["config"]] + [a for o in overrides for a in ("-o", o)]
    code, _, err = run_tool(tool, argv, capsys, ws["root"])
    assert_one_error_line(code, err, status, *needles)


def test_config_file_missing_and_not_yaml(ws, capsys):
    code, _, err = run_tool("train", ["-c", str(ws["root"] / "nope.yaml")], capsys, ws["root"])
    assert_one_error_line(code, err, 2, "nope.yaml")
    broken = ws["root"] / "broken.yaml"
    broken.write_text("Global: {epochs: 1\nArch: [")
    code, _, err = run_tool("eval", ["-c", str(broken)], capsys, ws["root"])
    assert_one_error_line(code, err, 2, "broken.yaml", "not valid YAML")


def test_pretrained_model_naming_a_directory(ws, capsys):
    folder = ws["root"] / "ckpt_dir"
    folder.mkdir(exist_ok=True)
    (folder / "best_model.pdparams").write_bytes(b"")
    code, _, err = run_tool("eval", ["-c", ws["config"], "-o", f"Global.pretrained_model={folder}"],
                            capsys, ws["root"])
    line = assert_one_error_line(code, err, 2, "Global.pretrained_model", "is a directory",
                                 os.path.join(str(folder), "best_model"))
    assert "without .pdparams" in line
    code, _, err = run_tool("train", ["-c", ws["config"], "-o", f"Global.checkpoints={folder}"],
                            capsys, ws["root"])
    assert_one_error_line(code, err, 2, "Global.checkpoints", "is a directory")


def test_corrupt_checkpoint_names_the_file(ws, capsys):
    bad = ws["root"] / "garbage.pdparams"
    bad.write_bytes(os.urandom(256))
    code, _, err = run_tool("eval", ["-c", ws["config"], "-o", f"Global.pretrained_model={bad}"],
                            capsys, ws["root"])
    assert_one_error_line(code, err, 2, "garbage.pdparams", "corrupt")


# ---- the label list and the images --------------------------------------------------------
LIST_CASES = [
    # (id, list lines, exit status, needles beyond the list file)
    ("label_minus_one", ["0/0.png 0", "1/0.png -1"], 2, [":2:", "label -1", "0..9", "Arch.class_num is 10"]),
    ("label_equal_class_num", ["0/0.png 10", "1/0.png 1"], 2, [":1:", "label 10", "0..9"]),
    ("label_not_integer", ["0/0.png zero"], 2, [":1:", "'zero' is not an integer"]),
    ("line_without_label", ["0/0.png 0", "just_a_path.png"], 2, [":2:", "expected 'path label'"]),
    ("listed_file_missing", ["0/0.png 0", "0/missing.png 0"], 2, ["missing.png", "do not exist"]),
    ("empty_list", [], 2, ["lists no images"]),
]


@pytest.mark.parametrize("case, lines, status, needles", LIST_CASES, ids=[c[0] for c in LIST_CASES])
def test_label_list_errors_name_file_and_line(ws, capsys, case, lines, status, needles):
    name = f"list_{case}.txt"
    path = _write_list(ws["root"] / name, lines)
    code, _, err = run_tool("train", ["-c", ws["config"], "-o", f"DataLoader.Train.dataset.cls_label_path={path}"],
                            capsys, ws["root"])
    assert_one_error_line(code, err, status, name, *needles)


@pytest.mark.parametrize("workers", [0, 2], ids=["no_workers", "two_workers"])
def test_undecodable_training_image_names_the_file_and_never_hangs(ws, capsys, workers):
    """Paddle's loader hangs (no workers) or dies with 'Blocking queue is killed' (workers) when
    a dataset raises; the file is named in the main process instead."""
    bad_root = ws["root"] / f"train_bad_{workers}"
    bad_root.mkdir(exist_ok=True)
    (bad_root / "ok.png").write_bytes((ws["images"] / "0" / "0.png").read_bytes())
    (bad_root / "bad.png").write_bytes(b"\x89PNG truncated")
    path = _write_list(ws["root"] / f"bad_list_{workers}.txt", ["ok.png 0", "bad.png 1", "ok.png 0"])
    argv = ["-c", ws["config"], "-o", f"DataLoader.Train.dataset.image_root={bad_root}",
            "-o", f"DataLoader.Train.dataset.cls_label_path={path}", "-o", "Global.iter_per_epoch=2",
            "-o", f"DataLoader.Train.loader.num_workers={workers}",
            "-o", f"Global.output_dir={ws['root'] / 'output_bad'}"]
    code, _, err = run_tool("train", argv, capsys, ws["root"])
    assert_one_error_line(code, err, 1, "cannot read image", str(bad_root / "bad.png"),
                          f"bad_list_{workers}.txt:2", "could not decode")


def test_infer_over_a_folder_reports_the_bad_image_and_predicts_the_rest(ws, capsys):
    folder = ws["root"] / "mixed"
    folder.mkdir(exist_ok=True)
    for i in range(2):
        (folder / f"good{i}.png").write_bytes((ws["images"] / "1" / f"{i}.png").read_bytes())
    (folder / "bad.png").write_bytes(b"garbage")
    code, out, err = run_tool("infer", ["-c", ws["config"], "-o", f"Infer.infer_imgs={folder}"], capsys, ws["root"])
    assert_one_error_line(code, err, 1, "1 of 3 images", "bad.png")
    assert "skipped" in err and str(folder / "bad.png") in err
    assert out.count("'file_name'") == 2 and "good0.png" in out and "good1.png" in out


def test_infer_folder_without_images(ws, capsys):
    empty = ws["root"] / "empty_folder"
    empty.mkdir(exist_ok=True)
    code, _, err = run_tool("infer", ["-c", ws["config"], "-o", f"Infer.infer_imgs={empty}"], capsys, ws["root"])
    assert_one_error_line(code, err, 2, "no images", "empty_folder")


def test_eval_without_eval_loader(ws, capsys):
    path = _config_with(ws, "no_eval.yaml", lambda c: c["DataLoader"].pop("Eval"))
    code, _, err = run_tool("eval", ["-c", path], capsys, ws["root"])
    assert_one_error_line(code, err, 2, "DataLoader.Eval")


def test_train_without_loss_or_optimizer(ws, capsys):
    path = _config_with(ws, "no_loss.yaml", lambda c: c["Loss"].pop("Train"))
    code, _, err = run_tool("train", ["-c", path], capsys, ws["root"])
    assert_one_error_line(code, err, 2, "Loss.Train")
    path = _config_with(ws, "no_optimizer.yaml", lambda c: c.pop("Optimizer"))
    code, _, err = run_tool("train", ["-c", path], capsys, ws["root"])
    assert_one_error_line(code, err, 2, "Optimizer")


# ---- tools/export_model.py ----------------------------------------------------------------
EXPORT_CASES = [
    ("unknown_model", ["--model", "TransXNet_Q"], 2, ["--model", "TransXNet_Q", "Did you mean"]),
    ("class_num_negative", ["--model", "MixFormer_B0", "--class-num", "-1"], 2, ["class_num=-1"]),
    ("pretrained_missing", ["--model", "MixFormer_B0", "--pretrained", "/no/such.pdparams"], 2, ["/no/such.pdparams"]),
    ("config_missing", ["-c", "/no/such/config.yaml"], 2, ["/no/such/config.yaml"]),
    ("config_bad_key", ["-c", "{config}", "-o", "Global.save_inference_dirr=x"], 2, ["save_inference_dirr"]),
]


@pytest.mark.parametrize("argv, status, needles", [c[1:] for c in EXPORT_CASES], ids=[c[0] for c in EXPORT_CASES])
def test_export_model_errors(ws, capsys, argv, status, needles):
    argv = [a.format(config=ws["config"]) for a in argv] + ["--output", str(ws["root"] / "never_written")]
    code, _, err = run_tool("export_model", argv, capsys, ws["root"])
    assert_one_error_line(code, err, status, *needles)
    assert not (ws["root"] / "never_written").exists()


def test_usage_errors_exit_2(ws, capsys):
    """argparse's own usage errors: status 2, its 'error:' line, no traceback."""
    for tool, argv in (("export_model", ["-c", ws["config"], "--model", "MixFormer_B0"]),
                       ("train", []), ("predict_cls", ["--batch_size", "many"])):
        code, _, err = run_tool(tool, argv, capsys, ws["root"])
        assert code == 2 and "error:" in err and "Traceback" not in err, (tool, err)


# ---- deploy/python/predict_cls.py ---------------------------------------------------------
@pytest.fixture()
def broken_export(ws, tmp_path):
    """A copy of the good export that a case then damages."""
    folder = tmp_path / "export"
    folder.mkdir()
    for name in os.listdir(ws["root"] / "model"):
        (folder / name).write_bytes((ws["root"] / "model" / name).read_bytes())
    return folder


def _damage(folder, how):
    params, graph = folder / "inference.pdiparams", folder / "inference.json"
    if how == "params_missing":
        params.unlink()
    elif how == "params_truncated":
        params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    elif how == "params_garbage":
        params.write_bytes(os.urandom(params.stat().st_size))
    elif how == "graph_truncated":
        graph.write_bytes(graph.read_bytes()[:200])
    elif how == "graph_not_json":
        graph.write_text("this is not a model")
    elif how == "graph_missing":
        graph.unlink()
    elif how == "yml_not_yaml":
        (folder / "inference.yml").write_text("PreProcess: [unclosed")


PREDICTOR_CASES = [
    ("params_missing", 2, ["inference.pdiparams is missing", "re-export"]),
    ("params_truncated", 2, ["inference.pdiparams is corrupt or truncated", "Re-export"]),
    ("params_garbage", 2, ["inference.pdiparams", "Re-export"]),
    ("graph_truncated", 2, ["inference.json is not a valid exported model", "Re-export"]),
    ("graph_not_json", 2, ["inference.json is not a valid exported model"]),
    ("graph_missing", 2, ["no exported model", "export"]),
    ("yml_not_yaml", 2, ["inference.yml is not valid YAML"]),
]


@pytest.mark.parametrize("how, status, needles", PREDICTOR_CASES, ids=[c[0] for c in PREDICTOR_CASES])
def test_predictor_refuses_damaged_exports_naming_the_file(ws, capsys, broken_export, how, status, needles):
    _damage(broken_export, how)
    code, out, err = run_tool("predict_cls", ["--model_dir", str(broken_export), "--infer_imgs", str(ws["images"]),
                                              "--cpu_threads", "1"], capsys, ws["root"])
    assert_one_error_line(code, err, status, str(broken_export), *needles)
    assert "class id(s)" not in out  # no NaN scores, no garbage ids


def test_predictor_damaged_export_python_api(broken_export):
    from ppvision_hybrid.inference import ExportedModelError, create_predictor
    _damage(broken_export, "params_missing")
    with pytest.raises(ExportedModelError, match="inference.pdiparams is missing"):
        create_predictor(str(broken_export))


PREDICT_CLS_CASES = [
    ("config_missing", ["-c", "/no/such/inference_cls.yaml"], 2, ["/no/such/inference_cls.yaml"]),
    ("unknown_key", ["-o", "Global.batchsize=2"], 2, ["Global.batchsize", "Did you mean 'batch_size'"]),
    ("model_dir_missing", ["--model_dir", "/no/such/model"], 2, ["/no/such/model"]),
    ("infer_imgs_missing", ["--infer_imgs", "/no/such/images"], 2, ["/no/such/images"]),
    ("no_model_dir", ["--model_dir", ""], 2, ["Global.inference_model_dir"]),
    ("onnx_missing", ["--use_onnx"], 2, ["inference.onnx", "tools/export_onnx.py"]),
    ("refused_device", ["-o", "Global.use_xpu=True"], 2, ["Global.use_xpu", "Kunlun XPU"]),
    ("bad_op_key", ["-o", "PreProcess.transform_ops.0.ResizeImage.resize_shrt=3"], 2, ["resize_shrt"]),
]


@pytest.mark.parametrize("extra, status, needles", [c[1:] for c in PREDICT_CLS_CASES],
                         ids=[c[0] for c in PREDICT_CLS_CASES])
def test_predict_cls_errors(ws, capsys, extra, status, needles):
    argv = ["--model_dir", str(ws["root"] / "model"), "--infer_imgs", str(ws["images"]), "--cpu_threads", "1"]
    code, _, err = run_tool("predict_cls", argv + list(extra), capsys, ws["root"])
    assert_one_error_line(code, err, status, *needles)


def test_predict_cls_bad_class_id_map_line(ws, capsys, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("0 a\nb 1\n")
    argv = ["--model_dir", str(ws["root"] / "model"), "--infer_imgs", str(ws["images"]),
            "--class_id_map_file", str(labels)]
    code, _, err = run_tool("predict_cls", argv, capsys, ws["root"])
    assert_one_error_line(code, err, 2, "labels.txt:2", "class_id")


def test_predict_cls_folder_with_a_bad_image(ws, capsys, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes((ws["images"] / "0" / f"{i}.png").read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
    code, out, err = run_tool("predict_cls", ["--model_dir", str(ws["root"] / "model"), "--infer_imgs", str(folder),
                                              "--batch_size", "2"], capsys, ws["root"])
    assert_one_error_line(code, err, 1, "1 of 4 images", "broken.jpg")
    assert f"skipped {folder / 'broken.jpg'}: could not decode" in err
    assert len([line for line in out.splitlines() if "class id(s)" in line]) == 3


# ---- the launchers ------------------------------------------------------------------------
def test_launchers_without_a_script(capsys, tmp_path):
    from ppvision_hybrid import dense, paddleclas
    for main, needle in ((dense.main, "no script"), (paddleclas.main, "no such PaddleClas script")):
        with pytest.raises(SystemExit) as info:
            main([str(tmp_path / "missing_tool.py")])
        err = capsys.readouterr().err
        assert_one_error_line(info.value.code, err, 2, needle, "missing_tool.py")


# ---- the Python API -----------------------------------------------------------------------
MODEL_ARG_CASES = [
    ("MixFormer_B0", dict(class_num=-1), "class_num=-1"),
    ("MixFormer_B0", dict(drop_path_rate=2.0), "drop_path_rate=2.0"),
    ("MixFormer_B0", dict(drop_path_rate=-0.1), "drop_path_rate=-0.1"),
    ("MixFormer_B0", dict(window_size=0), "window_size=0"),
    ("MixFormer_B0", dict(out_indices=(0, 4), features_only=True), "out_indices=(0, 4)"),
    ("MixFormer_B0", dict(attn_drop_rate=1.0), "attn_drop_rate=1.0"),
    ("TransXNet_T", dict(class_num=2.5), "class_num=2.5"),
    ("TransXNet_T", dict(img_size=0), "img_size=0"),
    ("FocalTransformer_T", dict(window_size=-7), "window_size=-7"),
    ("FocalTransformer_T", dict(drop_rate=1.5), "drop_rate=1.5"),
    ("MAFormer_S", dict(gld_grid=0), "gld_grid=0"),
    ("DualFormer_T", dict(drop_path_rate=3), "drop_path_rate=3"),
]


@pytest.mark.parametrize("name, kwargs, needle", MODEL_ARG_CASES,
                         ids=[f"{c[0]}-{next(iter(c[1]))}" for c in MODEL_ARG_CASES])
def test_model_constructors_validate_their_arguments(name, kwargs, needle):
    import ppvision_hybrid as pvh
    with pytest.raises(ModelArgumentError) as info:
        pvh.create_model(name, **kwargs)
    assert needle in str(info.value) and name in str(info.value)
    assert isinstance(info.value, ValueError)  # catchable as before


def test_headless_model_is_still_class_num_0():
    import ppvision_hybrid as pvh
    with paddle.LazyGuard():
        model = pvh.create_model("MixFormer_B0", class_num=0)
    assert isinstance(model.head, paddle.nn.Identity)


def test_python_api_config_and_dataset_errors(ws):
    from ppvision_hybrid.data import ImageNetDataset
    from ppvision_hybrid.engine import get_config
    from ppvision_hybrid.engine.config import ConfigError
    with pytest.raises(ConfigError, match="Global.epochs must be an integer"):
        get_config(ws["config"], ["Global.epochs=abc"])
    path = _write_list(ws["root"] / "api_list.txt", ["0/0.png 0", "0/1.png 0", "1/0.png 7"])
    dataset = ImageNetDataset(str(ws["images"]), path)
    assert "api_list.txt:3: label 7" in dataset.label_range_problem(5)
    assert dataset.label_range_problem(8) is None
    (ws["root"] / "api_bad").mkdir(exist_ok=True)
    (ws["root"] / "api_bad" / "x.png").write_bytes(b"nope")
    bad = ImageNetDataset(str(ws["root"] / "api_bad"), _write_list(ws["root"] / "api_bad_list.txt", ["x.png 0"]))
    image, index = bad[0]  # the loader's marker: never raises inside Paddle's reader thread
    assert image is None and int(index) == 0
    error = bad.read_error(0)
    assert isinstance(error, DataError) and "x.png" in str(error) and "api_bad_list.txt:1" in str(error)


def test_format_error_one_line():
    assert format_error(FileNotFoundError(2, "No such file or directory", "/x/y.yaml")) == \
        "No such file or directory: /x/y.yaml"
    assert format_error(ValueError("two\n   lines")) == "two lines"
    assert format_error(KeyError("Unknown model name 'X'")) == "Unknown model name 'X'"


# ---- real processes: one line, no noise, --debug / PPVH_DEBUG ------------------------------
def _process(args, tmp_path, **env):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py")] + args, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, **env))


def test_process_prints_one_line_and_debug_shows_the_traceback(ws, tmp_path):
    args = ["-c", ws["config"], "-o", "Global.epochs=abc"]
    plain = _process(args, tmp_path, PPVH_DEBUG="0")
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [
        f"error: {ws['config']}: Global.epochs must be an integer, got 'abc'"], plain.stderr
    debug = _process(args + ["--debug"], tmp_path, PPVH_DEBUG="0")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    env_debug = _process(args, tmp_path, PPVH_DEBUG="1")
    assert env_debug.returncode == 1 and "Traceback" in env_debug.stderr
    assert os.listdir(tmp_path) == []


NOISE_SCRIPT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("cli_errors", {path!r})  # without the package
cli_errors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cli_errors)
quiet_third_party_noise = cli_errors.quiet_third_party_noise
if sys.argv[1] == "quiet":
    quiet_third_party_noise()  # what every tool's main_guard does first
import paddle
if sys.argv[1] == "quiet":
    quiet_third_party_noise()  # (after paddle's import: spends the once-per-process PIR notice)
from paddle.static import InputSpec


class Twice(paddle.nn.Layer):
    def forward(self, x):
        return x + x


layer = paddle.jit.to_static(Twice(), input_spec=[InputSpec([None, 3], "float32")], full_graph=True)
paddle.jit.save(layer, sys.argv[2])
"""


def test_third_party_noise_is_quieted_at_the_source(tmp_path):
    """Paddle's import warns that ccache is missing and its first traced ``paddle.add`` logs
    "PIR not support input out tensor for now!!!!!": both gone after quiet_third_party_noise()
    (the control run without it shows both, so the check can fail)."""
    script = tmp_path / "noise.py"
    script.write_text(NOISE_SCRIPT.format(path=os.path.join(ROOT, "ppvision_hybrid", "cli_errors.py")))
    runs = {mode: subprocess.run([sys.executable, str(script), mode, str(tmp_path / mode / "inference")],
                                 capture_output=True, text=True, timeout=300,
                                 env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="default"))
            for mode in ("control", "quiet")}
    assert runs["control"].returncode == 0 and runs["quiet"].returncode == 0, runs["quiet"].stderr
    assert "No ccache found" in runs["control"].stderr and "not support input out tensor" in runs["control"].stderr
    assert "No ccache found" not in runs["quiet"].stderr and "not support input out tensor" not in runs["quiet"].stderr, \
        runs["quiet"].stderr
    assert (tmp_path / "quiet" / "inference.json").is_file()  # the export itself still ran
