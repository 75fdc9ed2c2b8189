"""Our models inside PaddleClas's own engine: every config we ship, through PaddleClas's tools.

    python benchmarks/paddleclas_engine.py /path/to/PaddleClas [--python PY] [--only NAME ...]
        [--demo-epochs 2] [--workdir DIR] [--keep]

``--python`` is an interpreter with PaddleClas's requirements (visualdl, ujson, easydict, ...)
and this repository importable; each PaddleClas tool runs under
``python -m ppvision_hybrid.paddleclas <PaddleClas>/tools/<tool>.py``.

* ``configs/demo/*_digits.yaml``: the whole chain -- PaddleClas's ``tools/train.py``
  (``--demo-epochs`` epochs), ``tools/eval.py``, ``tools/export_model.py``, then PaddleClas's
  ``deploy/python/predict_cls.py`` with PaddleClas's own ``deploy/configs/inference_cls.yaml``
  (``-o`` overrides for the 32x32 digits pre-processing) on the 359 validation images; its top-1
  against the labels is reported. On Paddle 3.3.1 that predictor cannot build any CPU predictor
  (its ``Config.enable_memory_optim()`` fails: "Not find predictor_id 0 and pass_name
  memory_optimize_pass"), which a control run on Paddle's own ResNet-18 export shows; so the
  predictor runs once unchanged and then, oneDNN on and off, with only that call made a no-op
  (a ``sitecustomize`` on the predictor's ``PYTHONPATH``).
* ``configs/*.yaml`` (the ImageNet recipes): PaddleClas's ``tools/train.py`` for one iteration
  (``Global.iter_per_epoch=1``, batch 2) with the data pointed at the digits folder and
  ``Global.device=cpu``; everything else as shipped.

Prints a table and a JSON line; exit status 1 unless every step passed.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)


def _run(cmd, cwd, env, timeout):
    start = time.time()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode == 0, time.time() - start, proc.stdout + proc.stderr


def _tool(python, paddleclas, tool):
    return [python, "-m", "ppvision_hybrid.paddleclas", os.path.join(paddleclas, "tools", tool)]


def _overrides(pairs):
    return [a for key, value in pairs for a in ("-o", f"{key}={value}")]


def _labels(list_file):
    out = {}
    for line in open(list_file):
        rel, label = line.split()
        out[os.path.basename(rel)] = int(label)
    return out


MEMORY_OPTIM_SHIM = """# benchmarks/paddleclas_engine.py: Paddle 3.3.1 fails to build a CPU predictor after
# Config.enable_memory_optim() ("Not find predictor_id ... memory_optimize_pass"); make it a no-op
import paddle.inference
paddle.inference.Config.enable_memory_optim = lambda self, *args, **kwargs: None
"""


def _predict_env(args, work, env, shim):
    """PaddleClas's deploy scripts import both paddleclas.deploy and ppcls."""
    paths = [os.path.join(work, "shim")] if shim else []
    paths += [os.path.join(work, "pkgs"), args.paddleclas, env.get("PYTHONPATH", "")]
    return dict(env, PYTHONPATH=os.pathsep.join(paths))


def paddleclas_predict(args, work, env, model_dir, images, size, mean, std, onednn, shim, labels_file=None):
    """PaddleClas's deploy/python/predict_cls.py with its own inference_cls.yaml; returns
    (ok, seconds, output)."""
    pairs = [("Global.inference_model_dir", model_dir), ("Global.infer_imgs", images),
             ("Global.use_gpu", False), ("Global.enable_mkldnn", onednn), ("Global.cpu_num_threads", 1),
             ("Global.batch_size", 16), ("PreProcess.transform_ops.0.ResizeImage.resize_short", size),
             ("PreProcess.transform_ops.1.CropImage.size", size),
             ("PreProcess.transform_ops.2.NormalizeImage.mean", str(mean).replace(" ", "")),
             ("PreProcess.transform_ops.2.NormalizeImage.std", str(std).replace(" ", "")),
             ("PostProcess.SavePreLabel.save_dir", os.path.join(work, "pre_label"))]
    if labels_file:
        pairs.append(("PostProcess.Topk.class_id_map_file", labels_file))
    cmd = [args.python, os.path.join(args.paddleclas, "deploy", "python", "predict_cls.py"), "-c",
           os.path.join(args.paddleclas, "deploy", "configs", "inference_cls.yaml")] + _overrides(pairs)
    return _run(cmd, os.path.join(args.paddleclas, "deploy"), _predict_env(args, work, env, shim), args.timeout)


def _first_error(log):
    return next((line.strip() for line in reversed(log.splitlines()) if "Error" in line), log[-300:])


def control_run(args, work, env):
    """PaddleClas's predictor, unchanged, on Paddle's own ResNet-18 export (random weights)."""
    code = ("import paddle, sys; from paddle.static import InputSpec; m = paddle.vision.models.resnet18(); "
            "m.eval(); paddle.jit.save(paddle.jit.to_static(m, input_spec=[InputSpec([None, 3, 224, 224], "
            "'float32')]), sys.argv[1] + '/inference')")
    control = os.path.join(work, "control_resnet18")
    subprocess.run([args.python, "-c", code, control], check=True, capture_output=True, env=env)
    image = os.path.join(work, "dataset", "digits", "images", "val")
    ok, _, log = paddleclas_predict(args, work, env, control, image, 224, [0.485, 0.456, 0.406],
                                    [0.229, 0.224, 0.225], False, shim=False)
    return {"ok": ok, "error": "" if ok else _first_error(log)}


def demo_chain(config, args, work, env):
    """PaddleClas train -> eval -> export -> PaddleClas predict_cls (oneDNN on/off)."""
    import yaml
    cfg = yaml.safe_load(open(config))
    name = cfg["Arch"]["name"]
    out = os.path.join(work, "output_" + name)
    inference = os.path.join(work, "inference_" + name)
    steps = {}
    common = [("Global.output_dir", out), ("Global.device", "cpu")]
    ok, secs, log = _run(_tool(args.python, args.paddleclas, "train.py") + ["-c", config] +
                         _overrides(common + [("Global.epochs", args.demo_epochs)]), work, env, args.timeout)
    top1 = re.findall(r"\[Eval\]\[Epoch \d+\]\[Avg\].*?top1: ([0-9.]+)", log)
    steps["train"] = {"ok": ok and bool(glob.glob(os.path.join(out, "**", "latest.pdparams"), recursive=True)),
                      "seconds": round(secs, 1), "val_top1": float(top1[-1]) if top1 else None}
    weights = next(iter(sorted(glob.glob(os.path.join(out, "**", "best_model.pdparams"), recursive=True))), "")
    weights = weights[:-len(".pdparams")]
    ok, secs, log = _run(_tool(args.python, args.paddleclas, "eval.py") + ["-c", config] +
                         _overrides(common + [("Global.pretrained_model", weights)]), work, env, args.timeout)
    top1 = re.findall(r"\[Eval\]\[Epoch \d+\]\[Avg\].*?top1: ([0-9.]+)", log)
    steps["eval"] = {"ok": ok and bool(top1), "seconds": round(secs, 1), "top1": float(top1[-1]) if top1 else None}
    ok, secs, log = _run(_tool(args.python, args.paddleclas, "export_model.py") + ["-c", config] +
                         _overrides(common + [("Global.pretrained_model", weights),
                                              ("Global.save_inference_dir", inference)]), work, env, args.timeout)
    steps["export"] = {"ok": ok and os.path.isfile(os.path.join(inference, "inference.pdiparams")),
                       "seconds": round(secs, 1)}
    data = os.path.join(work, "dataset", "digits")
    labels = _labels(os.path.join(data, "val_list.txt"))
    norm = cfg["DataLoader"]["Eval"]["dataset"]["transform_ops"][-1]["NormalizeImage"]
    size = cfg["Global"]["image_shape"][-1]
    for onednn, shim in ((False, False), (True, True), (False, True)):
        ok, secs, log = paddleclas_predict(args, work, env, inference, os.path.join(data, "images", "val"), size,
                                           norm["mean"], norm["std"], onednn, shim,
                                           os.path.join(data, "label_list.txt"))
        hits = [int(re.search(r"class id\(s\): \[(\d+)", line).group(1)) == labels.get(line.split(":")[0])
                for line in log.splitlines() if "class id(s)" in line]
        key = "predict unchanged" if not shim else f"predict oneDNN {'on' if onednn else 'off'} (memory_optim no-op)"
        steps[key] = {"ok": ok and len(hits) == len(labels), "seconds": round(secs, 1), "images": len(hits),
                      "top1": round(sum(hits) / max(len(hits), 1), 4), "error": "" if ok else _first_error(log)}
    return name, steps


def recipe_step(config, args, work, env):
    """One PaddleClas training iteration of a shipped ImageNet recipe on the digits folder."""
    import yaml
    name = yaml.safe_load(open(config))["Arch"]["name"]
    data = os.path.join(work, "dataset", "digits")
    pairs = [("Global.output_dir", os.path.join(work, "recipe_" + name)), ("Global.device", "cpu"),
             ("Global.epochs", 1), ("Global.iter_per_epoch", 1), ("Global.eval_during_train", False),
             ("DataLoader.Train.dataset.image_root", data),
             ("DataLoader.Train.dataset.cls_label_path", os.path.join(data, "val_list.txt")),
             ("DataLoader.Train.sampler.batch_size", 2), ("DataLoader.Train.loader.num_workers", 0)]
    ok, secs, log = _run(_tool(args.python, args.paddleclas, "train.py") + ["-c", config] + _overrides(pairs),
                         work, env, args.timeout)
    ok = ok and "[Train][Epoch 1/1][Iter: 0/1]" in log
    return name, {"train 1 iteration": {"ok": ok, "seconds": round(secs, 1), "log_tail": "" if ok else log[-1500:]}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paddleclas", help="root of a PaddleClas checkout")
    parser.add_argument("--python", default=sys.executable, help="interpreter with PaddleClas's requirements")
    parser.add_argument("--only", nargs="*", help="config file names (default: every shipped config)")
    parser.add_argument("--demo-epochs", type=int, default=2)
    parser.add_argument("--workdir")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--timeout", type=int, default=3600)
    args = parser.parse_args(argv)
    args.paddleclas = os.path.abspath(args.paddleclas)
    work = args.workdir or tempfile.mkdtemp(prefix="ppvh_paddleclas_")
    os.makedirs(os.path.join(work, "pkgs"), exist_ok=True)
    link = os.path.join(work, "pkgs", "paddleclas")  # PaddleClas's deploy scripts import paddleclas.deploy
    if not os.path.lexists(link):
        os.symlink(args.paddleclas, link)
    from ppvision_hybrid.data.digits import materialize_digits
    materialize_digits(os.path.join(work, "dataset", "digits"), verbose=False)
    os.makedirs(os.path.join(work, "shim"), exist_ok=True)
    with open(os.path.join(work, "shim", "sitecustomize.py"), "w") as f:
        f.write(MEMORY_OPTIM_SHIM)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    demos = sorted(glob.glob(os.path.join(ROOT, "configs", "demo", "*.yaml")))
    recipes = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
    if args.only:
        demos = [c for c in demos if os.path.basename(c) in args.only]
        recipes = [c for c in recipes if os.path.basename(c) in args.only]
    control = control_run(args, work, env)
    print(f"control: PaddleClas's predict_cls.py, unchanged, on Paddle's ResNet-18 export: "
          f"{'pass' if control['ok'] else 'FAIL: ' + control['error']}", flush=True)
    results = []
    try:
        for config, run in [(c, demo_chain) for c in demos] + [(c, recipe_step) for c in recipes]:
            name, steps = run(config, args, work, env)
            results.append({"config": os.path.relpath(config, ROOT), "model": name, "steps": steps})
            cells = ", ".join(f"{k}: {'pass' if v['ok'] else 'FAIL'}"
                              + (f" [{v['error'][:90]}]" if v.get("error") else "")
                              + (f" (top1 {v['top1']})" if v.get("top1") is not None else "")
                              + (f" (val top1 {v['val_top1']})" if v.get("val_top1") is not None else "")
                              + f" {v['seconds']:.0f}s" for k, v in steps.items())
            print(f"| {os.path.relpath(config, ROOT)} | {cells} |", flush=True)
            for step in steps.values():
                if not step["ok"] and step.get("log_tail"):
                    print(step["log_tail"], file=sys.stderr)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    # an unchanged-predictor failure counts against us only when Paddle's own ResNet-18 passes
    ok = bool(results) and all(s["ok"] or (k == "predict unchanged" and not control["ok"])
                               for r in results for k, s in r["steps"].items())
    for r in results:
        for s in r["steps"].values():
            s.pop("log_tail", None)
    print(json.dumps({"benchmark": "paddleclas_engine", "all_passed": ok, "control": control, "results": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
