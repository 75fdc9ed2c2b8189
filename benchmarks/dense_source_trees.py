"""Our backbones through the toolkits' own tools in PaddleDetection / PaddleSeg source checkouts.

For the smallest variant of every family, each pipeline runs train -> evaluate -> export with the
checkout's own scripts (PaddleDetection: tools/train.py, eval.py, export_model.py; PaddleSeg:
tools/train.py, val.py, export.py), each launched as ``python -m ppvision_hybrid.dense <script>``
on the demo data, exactly as a user of the checkout would run them. Then the exported model runs
in Paddle Inference and is compared with the dygraph model built from the same checkout
(``python -m ppvision_hybrid.adapters.verify``).

    python benchmarks/dense_source_trees.py --det path/to/PaddleDetection --seg path/to/PaddleSeg
        [--families mixformer,transxnet] [--pipelines mask_rcnn,cascade_mask_rcnn,retinanet,upernet,semantic_fpn]
        [--workdir output/dense_source_trees] [--out output/dense_source_trees.jsonl]

The checkout goes first on PYTHONPATH (as PaddleSeg's install notes do with
``export PYTHONPATH=$(pwd)``; PaddleDetection's tools insert their checkout themselves). One JSON
line per (family, pipeline) is appended to --out as soon as it is done, and a Markdown table is
printed at the end. Exit status 1 if any step failed.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dense_all_families import PIPELINES  # noqa: E402  name -> (det|seg, demo config file)
LABELS = {"mask_rcnn": "Mask R-CNN", "cascade_mask_rcnn": "Cascade Mask R-CNN",
          "retinanet": "RetinaNet", "upernet": "UperNet", "semantic_fpn": "Semantic FPN"}


class StepFailed(RuntimeError):
    pass


def _run(cmd, cwd, pythonpath, timeout):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pythonpath, ROOT]))
    env.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = round(time.perf_counter() - t0, 1)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = " | ".join(l for l in text.strip().splitlines()[-6:])
        raise StepFailed(f"{os.path.basename(cmd[3] if len(cmd) > 3 else cmd[-1])} exited "
                         f"{proc.returncode}: {tail[-700:]}")
    return text, wall


def _setup_line(text):
    found = re.findall(r"\[ppvision_hybrid\] PVHBackbone registered in (\S+) from (\S+); "
                       r"compat fixes: (.*)", text)
    return {"toolkit_from": found[0][1], "fixes": found[0][2].strip()} if found else {}


def _launch(script, args):
    return [sys.executable, "-m", "ppvision_hybrid.dense", script] + args


def det_pipeline(name, config, arch, checkout, rundir, timeout):
    stem = os.path.splitext(os.path.basename(config))[0]
    opt = ["-o", f"PVHBackbone.arch={arch}"]
    tools = os.path.join(checkout, "tools")
    row, timing = {}, {}
    text, timing["train_s"] = _run(_launch(os.path.join(tools, "train.py"), ["-c", config] + opt),
                                   rundir, checkout, timeout)
    row.update(_setup_line(text))
    text, timing["eval_s"] = _run(_launch(os.path.join(tools, "eval.py"), ["-c", config] + opt),
                                  rundir, checkout, timeout)
    aps = re.findall(r"Average Precision  \(AP\) @\[ IoU=0\.50:0\.95 \| area=   all \| "
                     r"maxDets=100 \] = (-?[0-9.]+)", text)
    row["bbox_ap"] = float(aps[0]) if aps else None
    row["mask_ap"] = float(aps[1]) if len(aps) > 1 else None
    _, timing["export_s"] = _run(_launch(os.path.join(tools, "export_model.py"),
                                         ["-c", config, "--output_dir", "inference"] + opt),
                                 rundir, checkout, timeout)
    export_dir = os.path.join(rundir, "inference", stem)
    row["export_files"] = sorted(os.listdir(export_dir))
    text, timing["verify_s"] = _run(
        [sys.executable, "-m", "ppvision_hybrid.adapters.verify", "det", "-c", config, "--weights",
         os.path.join(rundir, "output", "demo_det", stem, "model_final"), "--export_dir",
         export_dir, "-o", f"PVHBackbone.arch={arch}"], rundir, checkout, timeout)
    row["compare"] = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    row.update(timing)
    return row


def seg_pipeline(name, config, arch, checkout, rundir, timeout, iters):
    from ppvision_hybrid.registry import create_model
    import paddle
    # PaddleSeg's export.py takes no --opts: a config of the user's own on top of ours, as
    # PaddleSeg users write them (_base_), names the backbone for all four steps
    override = {"_base_": config, "model": {"backbone": {"arch": arch}}}
    if name == "semantic_fpn":  # PFPNNet's fpn_inplanes are the backbone's channels
        with paddle.LazyGuard():
            channels = list(create_model(arch, features_only=True).out_channels)
        override["model"]["fpn_inplanes"] = channels
    config = os.path.join(rundir, f"{name}_{arch}.yml")
    with open(config, "w") as f:
        yaml.safe_dump(override, f)
    tools = os.path.join(checkout, "tools")
    save_dir = os.path.join(rundir, "train")
    weights = os.path.join(save_dir, f"iter_{iters}", "model.pdparams")
    export_dir = os.path.join(rundir, "inference")
    row, timing = {}, {}
    text, timing["train_s"] = _run(_launch(os.path.join(tools, "train.py"), [
        "--config", config, "--device", "cpu", "--save_dir", save_dir, "--iters", str(iters),
        "--save_interval", str(iters)]), rundir, checkout, timeout)
    row.update(_setup_line(text))
    text, timing["eval_s"] = _run(_launch(os.path.join(tools, "val.py"), [
        "--config", config, "--device", "cpu", "--model_path", weights]),
        rundir, checkout, timeout)
    miou = re.findall(r"mIoU: ([0-9.]+)", text)
    row["miou"] = float(miou[-1]) if miou else None
    _, timing["export_s"] = _run(_launch(os.path.join(tools, "export.py"), [
        "--config", config, "--model_path", weights, "--save_dir", export_dir,
        "--output_op", "none"]), rundir, checkout, timeout)
    row["export_files"] = sorted(os.listdir(export_dir))
    text, timing["verify_s"] = _run(
        [sys.executable, "-m", "ppvision_hybrid.adapters.verify", "seg", "-c", config, "--weights",
         weights, "--export_dir", export_dir], rundir, checkout, timeout)
    row["compare"] = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    row.update(timing)
    return row


def _compare_text(row):
    if "compare" not in row:
        return "-"
    parts = []
    for c in row["compare"]:
        if "bbox_num" in c:
            mask = "" if "mask_pixels_differing" not in c else f", mask pixels differing {c['mask_pixels_differing']:.1e}"
            parts.append(f"{c['bbox_num']} boxes, max diff {c['bbox_max_abs_diff']:.1e}{mask}")
        else:
            parts.append(f"max logit diff {c['logits_max_abs_diff']:.1e}")
    return "; ".join(parts)


def table(rows):
    lines = ["| backbone | model | train (s) | evaluation | eval (s) | export (s) | "
             "Paddle Inference vs dygraph | fixes applied |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arch']} | {LABELS[r['pipeline']]} | failed: {r['error'][:200]} "
                         f"| | | | | |")
            continue
        if "miou" in r:
            ev = f"mIoU {r['miou']:.3f}" if r["miou"] is not None else "no mIoU printed"
        else:
            ev = "bbox AP " + (f"{r['bbox_ap']:.3f}" if r["bbox_ap"] is not None else "-")
            if r.get("mask_ap") is not None:
                ev += f", segm AP {r['mask_ap']:.3f}"
        lines.append(f"| {r['arch']} | {LABELS[r['pipeline']]} | {r['train_s']} | {ev} | "
                     f"{r['eval_s']} | {r['export_s']} | {_compare_text(r)} | {r.get('fixes', '?')} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--det", help="PaddleDetection checkout (for the det pipelines)")
    ap.add_argument("--seg", help="PaddleSeg checkout (for the seg pipelines)")
    ap.add_argument("--families", default=None, help="comma-separated (default: every family)")
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--iters", type=int, default=4, help="PaddleSeg training iterations")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "output", "dense_source_trees"))
    ap.add_argument("--out", default=os.path.join(ROOT, "output", "dense_source_trees.jsonl"))
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per step")
    args = ap.parse_args(argv)
    import ppvision_hybrid
    from ppvision_hybrid.adapters.common import smallest_variant
    from ppvision_hybrid.datasets.dense_demo import make_dense_demo
    names = [p for p in args.pipelines.split(",") if p]
    unknown = [p for p in names if p not in PIPELINES]
    if unknown:
        ap.error(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)}")
    for kind, flag in (("det", args.det), ("seg", args.seg)):
        wanted = any(PIPELINES[p][0] == kind for p in names)
        marker = os.path.join(flag or "", "ppdet" if kind == "det" else "paddleseg", "__init__.py")
        if wanted and not os.path.isfile(marker):
            ap.error(f"--{kind} must be a {'PaddleDetection' if kind == 'det' else 'PaddleSeg'} "
                     f"checkout (no {marker})")
    families = args.families.split(",") if args.families else ppvision_hybrid.list_families()
    workdir = os.path.abspath(args.workdir)
    demo = os.path.join(workdir, "dense_demo")
    if not os.path.isdir(demo):
        make_dense_demo(demo)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    rows, failed = [], False
    for family in families:
        arch = smallest_variant(family)
        for name in names:
            kind, config_name = PIPELINES[name]
            config = os.path.join(ROOT, "configs", kind, "demo", config_name)
            rundir = os.path.join(workdir, arch, name)
            os.makedirs(os.path.join(rundir, "output"), exist_ok=True)
            link = os.path.join(rundir, "output", "dense_demo")  # the configs' relative data path
            if not os.path.exists(link):
                os.symlink(demo, link)
            print(f"[{time.strftime('%H:%M:%S')}] {arch} {LABELS[name]} ...", flush=True)
            t0 = time.perf_counter()
            try:
                if kind == "det":
                    row = det_pipeline(name, config, arch, os.path.abspath(args.det), rundir,
                                       args.timeout)
                else:
                    row = seg_pipeline(name, config, arch, os.path.abspath(args.seg), rundir,
                                       args.timeout, args.iters)
            except (StepFailed, subprocess.TimeoutExpired, KeyError, ValueError) as err:
                row, failed = {"error": f"{type(err).__name__}: {err}"}, True
            row.update(arch=arch, pipeline=name, wall_s=round(time.perf_counter() - t0, 1))
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
