"""Run the toolkits' own deploy scripts, unmodified, on our exports and on a ResNet-18 control.

    python benchmarks/consumer_scripts.py --paddleclas ~/PaddleClas --paddledetection ~/PaddleDetection \\
        --paddleseg ~/PaddleSeg [--models TransXNet_T ...] [--write-docs]

* PaddleClas ``deploy/python/predict_cls.py -c deploy/configs/inference_cls.yaml`` (CPU, its
  defaults otherwise: ``enable_mkldnn: True``) on exports of tools/export_model.py (fixed 224,
  dynamic batch, softmax). Its printed top-5 class ids and scores are compared with our
  predictor (oneDNN off) on the image preprocessed by PaddleClas's own operators.
* PaddleDetection ``deploy/python/infer.py --device CPU`` on exports of tools/export_det.py
  (the demo Mask R-CNN, random weights); it must exit 0 and write its visualized image.
* PaddleSeg ``deploy/python/infer.py --device cpu --with_argmax`` on exports of
  tools/export_seg.py (the demo Semantic FPN, random weights; logits, hence its documented
  ``--with_argmax``); it must exit 0 and write its label map.

The control is the same export with a ResNet-18 (``paddle.vision.models.resnet18``; ppdet
``ResNet`` depth 18; PaddleSeg ``ResNet18_vd``). Each script runs three ways: as written; with
Paddle 3.3.1's memory optimization fixed (``enable_memory_optim()`` followed by
``enable_new_executor()``, patched into ``paddle.inference.Config`` by a ``sitecustomize`` on
``PYTHONPATH``: the scripts stay unmodified); and with that fix and oneDNN off (``disable_mkldnn()``
before ``create_predictor``), the one setting in which the toolkits' own dense heads run on 3.3.1.
Each checkout is copied into ``--workdir`` first (the scripts write there). Results are printed as
a markdown table; ``--write-docs`` puts it into docs/deploy.md between its markers.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- consumer-scripts:begin -->", "<!-- consumer-scripts:end -->"
CONTROL = "resnet18"
MODES = ("as written", "memory-optim fix", "memory-optim fix, oneDNN off")

_SHIM = '''
import paddle.inference as _inference
_enable = _inference.Config.enable_memory_optim

def _enable_memory_optim(self, *args, **kwargs):  # what Paddle 3.3.1 needs for PIR models
    _enable(self, *args, **kwargs)
    self.enable_new_executor()

_inference.Config.enable_memory_optim = _enable_memory_optim
'''
_ONEDNN_OFF = '''
_create = _inference.create_predictor

def _create_predictor(config):
    config.disable_mkldnn()
    return _create(config)

_inference.create_predictor = _create_predictor
'''

_EXPORT_CONTROL_CLS = """
import sys
sys.path.insert(0, sys.argv[1])
import paddle
from ppvision_hybrid.export import export_inference_model
paddle.seed(0)
model = paddle.vision.models.resnet18()
model.eval()
export_inference_model(model, sys.argv[2], with_softmax=True)
"""

_DET_WEIGHTS = """
import sys
sys.path.insert(0, sys.argv[1])
import paddle
from ppvision_hybrid.adapters.cli import build_det_model
paddle.set_device("cpu")
paddle.seed(0)
model, _ = build_det_model(sys.argv[2], dict(a.split("=", 1) for a in sys.argv[4:]) or None)
paddle.save(model.state_dict(), sys.argv[3])
"""

_CLS_REFERENCE = """
import sys, json
import cv2, numpy as np, yaml
sys.path[:0] = [sys.argv[1], sys.argv[2], sys.argv[2] + "/paddleclas"]
from paddleclas.deploy.python.preprocess import create_operators
from ppvision_hybrid.inference import create_predictor
with open(sys.argv[3]) as f:
    ops = create_operators(yaml.safe_load(f)["PreProcess"]["transform_ops"])
img = cv2.imread(sys.argv[5])[:, :, ::-1]
for op in ops:
    img = op(img)
probs = create_predictor(sys.argv[4], enable_mkldnn=False)(np.array([img]))[0]
top = np.argsort(-probs)[:5]
print("REFERENCE " + json.dumps({"ids": top.tolist(), "scores": [float(probs[i]) for i in top]}))
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paddleclas", help="PaddleClas checkout")
    parser.add_argument("--paddledetection", help="PaddleDetection checkout")
    parser.add_argument("--paddleseg", help="PaddleSeg checkout")
    parser.add_argument("--models", nargs="*", help="registered names (default: smallest per family)")
    parser.add_argument("--workdir", help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per script run")
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/deploy.md")
    return parser.parse_args(argv)


def _run(cmd, cwd=None, env=None, timeout=600):
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s"
    return proc.returncode, proc.stdout, proc.stderr


def _error_line(text):
    """The most telling line of a failed run's output (Paddle's error, else the last line)."""
    lines = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\w+\]\s*", "", line.strip())  # log prefixes
             for line in text.splitlines() if line.strip()]
    for pattern in (r"\((InvalidArgument|Unimplemented|Fatal|NotFound|PreconditionNotMet)\)", r"Error\b"):
        for line in lines:
            if re.search(pattern, line):
                return re.sub(r"\s*\[Hint:.*", "", re.sub(r"\s*\(at /paddle/\S+\)", "", line))[:160]
    return lines[-1][:160] if lines else "no output"


def _environment(shim_dir, threads="1"):
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    if shim_dir:
        env["PYTHONPATH"] = shim_dir + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _shims(work):
    dirs = {"as written": None}
    for mode, code in (("memory-optim fix", _SHIM), ("memory-optim fix, oneDNN off", _SHIM + _ONEDNN_OFF)):
        path = os.path.join(work, "shims", re.sub(r"\W+", "_", mode))
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "sitecustomize.py"), "w") as f:
            f.write(code)
        dirs[mode] = path
    return dirs


def _image(path, height=300, width=400):
    import cv2
    import numpy as np
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 255 / width), (yy * 255 / height), ((xx + yy) % 97) * 2.6], -1).astype("uint8")
    cv2.imwrite(path, img)
    return path


def check_paddleclas(checkout, models, work, shims, log, timeout):
    pkg = os.path.join(work, "paddleclas_pkg")
    clas = os.path.join(pkg, "paddleclas")
    if not os.path.isdir(clas):  # the scripts import the checkout as the package "paddleclas"
        os.makedirs(clas)
        for item in ("__init__.py", "paddleclas.py", "deploy", "ppcls"):
            src = os.path.join(checkout, item)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(clas, item), symlinks=True)
            else:
                shutil.copy(src, os.path.join(clas, item))
    deploy = os.path.join(clas, "deploy")
    image = _image(os.path.join(work, "cls.jpg"))
    yaml_file = os.path.join(deploy, "configs", "inference_cls.yaml")
    results = {}
    for name in [CONTROL] + models:
        out = os.path.join(work, "cls", name)
        if name == CONTROL:
            code, _, err = _run([sys.executable, "-c", _EXPORT_CONTROL_CLS, ROOT, out])
        else:
            code, _, err = _run([sys.executable, os.path.join(ROOT, "tools", "export_model.py"), "--model", name,
                                 "--output", out])
        if code:
            results[name] = {mode: f"export failed: {_error_line(err)}" for mode in MODES}
            continue
        code, ref_out, err = _run([sys.executable, "-c", _CLS_REFERENCE, ROOT, pkg, yaml_file, out, image])
        reference = json.loads(ref_out.split("REFERENCE ", 1)[1]) if "REFERENCE " in ref_out else None
        results[name] = {}
        for mode in MODES:
            env = _environment(shims[mode])
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH", ""), pkg, clas]))
            cmd = [sys.executable, "python/predict_cls.py", "-c", "configs/inference_cls.yaml",
                   "-o", f"Global.inference_model_dir={out}", "-o", f"Global.infer_imgs={image}",
                   "-o", "Global.use_gpu=False", "-o", "Global.cpu_num_threads=1"]
            code, stdout, stderr = _run(cmd, cwd=deploy, env=env, timeout=timeout)
            match = re.search(r"class id\(s\): (\[[^\]]*\]), score\(s\): (\[[^\]]*\])", stdout)
            if code or not match:
                results[name][mode] = f"fails: {_error_line(stderr + stdout)}"
            else:
                ids, scores = json.loads(match.group(1)), json.loads(match.group(2))
                same = (reference is not None and ids == reference["ids"]
                        and all(abs(a - b) <= 0.0051 for a, b in zip(scores, reference["scores"])))
                results[name][mode] = ("runs, top-5 = our predictor's" if same
                                       else f"runs, top-5 {ids} differ from {reference}")
            log(f"paddleclas {name} [{mode}]: {results[name][mode]}")
    return results


_DEMO_DATA = """
import sys
sys.path.insert(0, sys.argv[1])
from ppvision_hybrid.datasets.dense_demo import make_dense_demo
make_dense_demo(sys.argv[2], num_images=2, num_val=1)
"""


def _det_config(work, name):
    """Our demo Mask R-CNN with ``name`` as the backbone (ResNet-18 for the control): a config
    file including the demo one, so tools/export_det.py and the weights builder read the same
    (its label list comes from the generated demo annotations)."""
    path = os.path.join(work, "det", f"{name}.yml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    demo = os.path.join(ROOT, "configs", "det", "demo", "mask_rcnn_demo.yml")
    data = os.path.join(work, "dense_demo")
    if not os.path.isdir(data):
        _run([sys.executable, "-c", _DEMO_DATA, ROOT, data])
    with open(path, "w") as f:
        f.write(f"_BASE_: ['{demo}']\nweights: {os.path.join(work, 'det', name)}\n")
        f.write(f"TestDataset: !ImageFolder {{anno_path: annotations/instances_val.json, "
                f"dataset_dir: {os.path.join(data, 'det')}}}\n")
        if name == CONTROL:
            f.write("MaskRCNN: {backbone: ResNet}\nResNet: {depth: 18, variant: b, norm_type: bn, "
                    "freeze_at: -1, return_idx: [0, 1, 2, 3], num_stages: 4}\n")
        else:
            f.write(f"PVHBackbone: {{arch: {name}, pretrained: false}}\n")
    return path


def _seg_config(work, name):
    path = os.path.join(work, "seg", f"{name}.yml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    demo = os.path.join(ROOT, "configs", "seg", "demo", "semantic_fpn_demo.yml")
    with open(demo) as f:
        text = f.read()
    if name == CONTROL:
        text = re.sub(r"  backbone:\n(    .*\n)+", "  backbone:\n    type: ResNet18_vd\n", text)
        text = re.sub(r"fpn_inplanes: \[.*\]", "fpn_inplanes: [64, 128, 256, 512]", text)
    else:
        text = re.sub(r"arch: \w+", f"arch: {name}", text, count=1)
    with open(path, "w") as f:
        f.write(text)
    return path


def _export_det(work, name, out):
    config = _det_config(work, name)
    weights = os.path.join(work, "det", name) + ".pdparams"
    code, _, err = _run([sys.executable, "-c", _DET_WEIGHTS, ROOT, config, weights])
    if not code:
        code, _, err = _run([sys.executable, os.path.join(ROOT, "tools", "export_det.py"), "-c", config,
                             "--output_dir", out])
    return code, err, os.path.join(out, name)


def _det_command(model_dir, image, shown):
    return ["infer.py", f"--model_dir={model_dir}", f"--image_file={image}", "--device=CPU",
            f"--output_dir={shown}", "--threshold=0.0"]


def _export_seg(work, name, out):
    code, _, err = _run([sys.executable, os.path.join(ROOT, "tools", "export_seg.py"), "--config",
                         _seg_config(work, name), "--save_dir", out])
    return code, err, out


def _seg_command(model_dir, image, shown):
    return ["infer.py", "--config", os.path.join(model_dir, "deploy.yaml"), "--image_path", image,
            "--save_dir", shown, "--device", "cpu", "--cpu_threads", "1", "--with_argmax"]  # logits exported


#: toolkit -> (export, command, image size, file the script writes for ``<image>.jpg``)
_DENSE = {"det": (_export_det, _det_command, (256, 320), "{}.jpg", "image written"),
          "seg": (_export_seg, _seg_command, (128, 160), "{}.png", "label map written")}


def _check_dense(kind, checkout, models, work, shims, log, timeout):
    """Our tools' exports of the demo architecture, then the toolkit's ``deploy/python/infer.py``
    (copied, unmodified) on each in every mode: it must exit 0 and write its output file."""
    export, command, size, written_name, success = _DENSE[kind]
    scripts = os.path.join(work, f"{kind}_deploy")
    if not os.path.isdir(scripts):
        shutil.copytree(os.path.join(checkout, "deploy", "python"), scripts, symlinks=True)
    image = _image(os.path.join(work, f"{kind}.jpg"), *size)
    results = {}
    for name in [CONTROL] + models:
        code, err, model_dir = export(work, name, os.path.join(work, kind, "export", name))
        if code:
            results[name] = {mode: f"export failed: {_error_line(err)}" for mode in MODES}
            continue
        results[name] = {}
        for mode in MODES:
            shown = os.path.join(work, kind, "shown", name, re.sub(r"\W+", "_", mode))
            code, stdout, stderr = _run([sys.executable] + command(model_dir, image, shown), cwd=scripts,
                                        env=_environment(shims[mode]), timeout=timeout)
            written = os.path.isfile(os.path.join(shown, written_name.format(kind)))
            results[name][mode] = (f"runs, {success}" if code == 0 and written
                                   else f"fails (exit {code}): {_error_line(stderr + stdout)}")
            log(f"{kind} {name} [{mode}]: {results[name][mode]}")
    return results


def check_paddledetection(checkout, models, work, shims, log, timeout):
    return _check_dense("det", checkout, models, work, shims, log, timeout)


def check_paddleseg(checkout, models, work, shims, log, timeout):
    return _check_dense("seg", checkout, models, work, shims, log, timeout)


def markdown(all_results):
    """One table per toolkit (model x mode); each distinct failure is numbered and listed below."""
    lines, notes = [], []
    for toolkit, results in all_results.items():
        lines += [f"**{toolkit}**", "", "| model | " + " | ".join(MODES) + " |", "|---|" + "---|" * len(MODES)]
        for name, row in results.items():
            cells = []
            for mode in MODES:
                text = row[mode]
                if not text.startswith("runs"):
                    head, _, message = text.partition(": ")
                    if message not in notes:
                        notes.append(message)
                    text = f"{head} [{notes.index(message) + 1}]"
                cells.append(text.replace("|", "/"))
            label = "ResNet-18 (control)" if name == CONTROL else name
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"[{i}] `{message}`" + ("  " if i < len(notes) else "") for i, message in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def write_docs(table, path=os.path.join(ROOT, "docs", "deploy.md")):
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path + ".tmp", "w") as f:
        f.write(head + BEGIN + "\n" + table + "\n" + END + tail)
    os.replace(path + ".tmp", path)


def main(argv=None):
    args = parse_args(argv)
    if not (args.paddleclas or args.paddledetection or args.paddleseg):
        raise SystemExit("give at least one of --paddleclas, --paddledetection, --paddleseg (checkout paths)")
    if args.models:
        models = args.models
    else:
        sys.path.insert(0, ROOT)
        from ppvision_hybrid.registry import smallest_per_family
        models = smallest_per_family()
    work = args.workdir or tempfile.mkdtemp(prefix="consumer_scripts_")
    os.makedirs(work, exist_ok=True)
    shims = _shims(work)
    results = {}
    try:
        for toolkit, checkout, check in (("PaddleClas predict_cls.py", args.paddleclas, check_paddleclas),
                                         ("PaddleDetection infer.py", args.paddledetection, check_paddledetection),
                                         ("PaddleSeg infer.py", args.paddleseg, check_paddleseg)):
            if checkout:
                results[toolkit] = check(os.path.abspath(checkout), models, work, shims,
                                         lambda msg: print(msg, flush=True), args.timeout)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    table = markdown(results)
    print(table)
    if args.write_docs:
        write_docs(table)
    return results


if __name__ == "__main__":
    main()
