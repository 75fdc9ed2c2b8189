"""PaddleClas's TIPC chain (``test_tipc/test_train_inference_python.sh``, unchanged) on every
family's ``test_tipc/configs/<Family>/<Variant>_train_infer_python.txt``:

    python benchmarks/paddleclas_tipc.py /path/to/PaddleClas [--mode lite_train_lite_infer]
        [--only MixFormer_B0 ...] [--workdir DIR] [--keep]

TIPC runs from a repository root that holds ``test_tipc/``, ``tools/`` and ``deploy/``. This
script builds such a root in a scratch folder: PaddleClas's ``test_train_inference_python.sh``
and ``common_func.sh`` copied byte for byte, our ``test_tipc/configs``, ``tools``, ``configs``,
``ppvision_hybrid`` and ``deploy/{python,configs}`` linked in. Lite mode trains on the digits
folder (``./dataset/digits``, written on first use). Each chain is train, eval, export and
``deploy/python/predict_cls.py`` with oneDNN on and off: five steps, each judged by TIPC's own
``results_python.log`` ("Run successfully" / "Run failed"). TIPC looks at exit statuses only, so
this script also reads the two prediction logs: the top-1 class of every image with oneDNN on
and off must agree (at least 99%), and their accuracy against the digits labels is reported.
Prints a table and a JSON line; exit status 1 unless every step of every chain passed and the
predictions agree.
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
TIPC_SCRIPTS = ("test_train_inference_python.sh", "common_func.sh")
LINKED = ("tools", "configs", "ppvision_hybrid")
STEPS = ("train", "eval", "export", "predict oneDNN on", "predict oneDNN off")
MIN_AGREEMENT = 0.99


def top1_by_image(log_file):
    """``{image file name: top-1 class}`` from a predict_cls.py log."""
    out = {}
    for line in open(log_file, encoding="utf-8", errors="replace") if os.path.isfile(log_file) else []:
        match = re.match(r"(.+?):\tclass id\(s\): \[(\d+)", line)
        if match:
            out[os.path.basename(match.group(1))] = int(match.group(2))
    return out


def prediction_check(log_path, labels_file):
    """Top-1 agreement between the oneDNN-on and -off runs and each run's accuracy."""
    runs = {}
    for onednn in ("True", "False"):
        found = glob.glob(os.path.join(log_path, f"python_infer_cpu_*usemkldnn_{onednn}_*.log"))
        runs[onednn] = top1_by_image(found[0]) if found else {}
    labels = {}
    if os.path.isfile(labels_file):
        for line in open(labels_file):
            rel, label = line.split()
            labels[os.path.basename(rel)] = int(label)
    common = sorted(set(runs["True"]) & set(runs["False"]))
    agree = sum(runs["True"][k] == runs["False"][k] for k in common) / max(len(common), 1)

    def accuracy(run):
        return round(sum(run[k] == labels.get(k) for k in run) / max(len(run), 1), 4)
    return {"images": len(common), "onednn_agreement": round(agree, 4),
            "top1_onednn_on": accuracy(runs["True"]), "top1_onednn_off": accuracy(runs["False"])}


def build_workspace(paddleclas, workdir):
    """The scratch repository root TIPC runs in; returns its path."""
    os.makedirs(os.path.join(workdir, "test_tipc"), exist_ok=True)
    for name in TIPC_SCRIPTS:
        src = os.path.join(paddleclas, "test_tipc", name)
        if not os.path.isfile(src):
            raise SystemExit(f"{src} not found: pass the root of a PaddleClas checkout")
        shutil.copyfile(src, os.path.join(workdir, "test_tipc", name))
    links = [(os.path.join(ROOT, "test_tipc", "configs"), os.path.join(workdir, "test_tipc", "configs"))]
    links += [(os.path.join(ROOT, name), os.path.join(workdir, name)) for name in LINKED]
    # deploy/ must be a real folder: TIPC cds into it and reads ../inference, ../dataset
    os.makedirs(os.path.join(workdir, "deploy"), exist_ok=True)
    links += [(os.path.join(ROOT, "deploy", name), os.path.join(workdir, "deploy", name))
              for name in ("python", "configs")]
    for src, dst in links:
        if not os.path.lexists(dst):
            os.symlink(src, dst)
    return workdir


def classify(line):
    """TIPC status line -> step name (None for other lines)."""
    if "predict_cls.py" in line:
        return f"predict oneDNN {'on' if 'enable_mkldnn=True' in line else 'off'}"
    for step, needle in (("export", "export_model.py"), ("eval", "eval.py"), ("train", "train.py")):
        if needle in line:
            return step
    return None


def run_chain(workspace, config_file, mode, env, timeout):
    model = next(line.split(":", 1)[1].strip() for line in open(config_file)
                 if line.startswith("model_name:"))
    rel = os.path.relpath(config_file, ROOT)
    start = time.time()
    proc = subprocess.run(["bash", "test_tipc/test_train_inference_python.sh", rel, mode], cwd=workspace,
                          env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.time() - start
    status = os.path.join(workspace, "test_tipc", "output", model, mode, "results_python.log")
    steps = {}
    if os.path.isfile(status):
        for line in open(status, encoding="utf-8", errors="replace"):
            step = classify(line)
            if step:
                steps[step] = "Run successfully" in line
    checkpoints = glob.glob(os.path.join(workspace, "test_tipc", "output", model, mode, "*", model,
                                         "latest.pdparams"))
    predictions = prediction_check(os.path.dirname(status), os.path.join(workspace, "dataset", "digits",
                                                                          "val_list.txt"))
    return {"model": model, "config": rel, "steps": steps, "passed": sum(steps.values()),
            "predictions": predictions,
            "checkpoint_written": bool(checkpoints), "seconds": round(elapsed, 1),
            "script_exit": proc.returncode, "log_tail": (proc.stdout + proc.stderr)[-2000:]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paddleclas", help="root of a PaddleClas checkout (its test_tipc/ is used)")
    parser.add_argument("--mode", default="lite_train_lite_infer")
    parser.add_argument("--only", nargs="*", help="model names (default: every TIPC config)")
    parser.add_argument("--workdir", help="scratch root (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch root")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per chain")
    args = parser.parse_args(argv)
    configs = sorted(glob.glob(os.path.join(ROOT, "test_tipc", "configs", "*", "*_train_infer_python.txt")))
    if args.only:
        configs = [c for c in configs if re.sub(r"_train_infer_python\.txt$", "", os.path.basename(c)) in args.only]
    workdir = args.workdir or tempfile.mkdtemp(prefix="ppvh_tipc_")
    build_workspace(os.path.abspath(args.paddleclas), workdir)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    results = []
    try:
        for config in configs:
            result = run_chain(workdir, config, args.mode, env, args.timeout)
            results.append(result)
            marks = " | ".join("pass" if result["steps"].get(s) else "FAIL" for s in STEPS)
            pred = result["predictions"]
            print(f"| {result['model']} | {marks} | {result['passed']}/{len(STEPS)} | "
                  f"{pred['onednn_agreement']:.1%} | {pred['top1_onednn_on']:.1%} / {pred['top1_onednn_off']:.1%} | "
                  f"{result['seconds']:.0f} s |", flush=True)
            if result["passed"] != len(STEPS):
                print(result["log_tail"], file=sys.stderr)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    ok = bool(results) and all(r["passed"] == len(STEPS) and r["checkpoint_written"]
                               and r["predictions"]["onednn_agreement"] >= MIN_AGREEMENT for r in results)
    print(json.dumps({"benchmark": "paddleclas_tipc", "mode": args.mode, "all_passed": ok,
                      "results": [{k: v for k, v in r.items() if k != "log_tail"} for r in results]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
