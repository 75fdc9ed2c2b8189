"""Every registered family through PaddleDetection and PaddleSeg (run by hand; CI covers one
family per architecture in tests/test_dense.py).

    python benchmarks/dense_all_families.py --part pipelines [--family mixformer]
        [--pipelines mask_rcnn,upernet,cascade_mask_rcnn,retinanet,semantic_fpn]
    python benchmarks/dense_all_families.py --part memory    [--family mixformer]

pipelines: Mask R-CNN (train 1 epoch on the 8-image demo set, COCO bbox+segm eval, export,
           paddle.inference == dygraph at 128x160 and 160x96) and UperNet (4 iterations, mIoU,
           export, inference == dygraph at 97x131 and 128x128), smallest variant per family.
memory:    batch-1 CPU inference at 3x800x1333 of (a) the backbone alone and (b) the full
           Mask R-CNN FPN 1x COCO model at 3x800x1344 (the reader pads to a multiple of 32;
           backbone + FPN + RPN + heads + post-process, 80 classes), each family's smallest
           variant, fp32, no grad: wall time of the second run and peak RSS growth, measured in
           a fresh subprocess per family and model.
Results are appended as JSON lines to --out (default output/dense_all_families.jsonl).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(arch, what, height=800, width=1333, repeats=1):
    """Runs in its own process (peak RSS is per process)."""
    import numpy as np
    import paddle
    paddle.set_device("cpu")
    if what == "backbone":
        from ppvision_hybrid import create_model
        model = create_model(arch, features_only=True)
        model.eval()
        run = lambda x: model(x)  # noqa: E731
    else:
        # ppdet's reader pads every batch to a multiple of 32 (PadBatch) before the FPN
        width = -(-width // 32) * 32
        from ppvision_hybrid.adapters.cli import build_det_model
        # the shipped COCO 1x setting (80 classes, 1000 proposals, 100 detections) with the
        # backbone swapped for this family's smallest variant
        model, _ = build_det_model(
            os.path.join(ROOT, "configs", "det", "transxnet", "mask_rcnn_fpn_1x_transxnet_t_coco.yml"),
            {"PVHBackbone": {"arch": arch, "pretrained": False, "model_kwargs": {}}})
        model.eval()

        def run(x):
            return model({"image": x, "im_shape": paddle.to_tensor([[float(height), float(width)]]),
                          "scale_factor": paddle.ones([1, 2])})
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 3, height, width)).astype("float32"))
    base = _rss_mb()
    with paddle.no_grad():
        t0 = time.perf_counter()
        run(x)
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
    return {"arch": arch, "model": what, "input": [1, 3, height, width], "first_s": round(first, 2),
            "time_s": round(min(times), 2), "peak_rss_growth_mb": round(_rss_mb() - base, 1),
            "peak_rss_mb": round(_rss_mb(), 1),
            "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0)}


#: demo pipelines by name: (task, demo config file)
PIPELINES = {
    "mask_rcnn": ("det", "mask_rcnn_demo.yml"),
    "cascade_mask_rcnn": ("det", "cascade_mask_rcnn_demo.yml"),
    "retinanet": ("det", "retinanet_demo.yml"),
    "upernet": ("seg", "upernet_demo.yml"),
    "semantic_fpn": ("seg", "semantic_fpn_demo.yml"),
}


def pipelines(arch, workdir, demo, names=("mask_rcnn", "upernet")):
    from ppvision_hybrid.adapters.pipeline import run_det_pipeline, run_seg_pipeline
    rows = []
    for name in names:
        task, config = PIPELINES[name]
        t0 = time.perf_counter()
        if task == "det":
            out = run_det_pipeline(os.path.join(ROOT, "configs", "det", "demo", config), arch,
                                   demo["det_root"], os.path.join(workdir, name))
            out.pop("trainer")
        else:
            out = run_seg_pipeline(os.path.join(ROOT, "configs", "seg", "demo", config), arch,
                                   demo["seg_root"], os.path.join(workdir, name), iters=4)
            out.pop("model")
        out["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(dict(out, pipeline=name))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["pipelines", "memory"], required=True)
    ap.add_argument("--family", default=None, help="one family (default: all)")
    ap.add_argument("--out", default=os.path.join(ROOT, "output", "dense_all_families.jsonl"))
    ap.add_argument("--models", default="backbone,mask_rcnn", help="memory part: what to measure")
    ap.add_argument("--pipelines", default="mask_rcnn,upernet",
                    help="pipelines part: comma-separated, from " + ", ".join(PIPELINES))
    ap.add_argument("--_measure", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._measure:
        print("RESULT " + json.dumps(measure(*args._measure)))
        return
    import ppvision_hybrid
    from ppvision_hybrid.adapters.common import smallest_variant
    families = [args.family] if args.family else ppvision_hybrid.list_families()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)

    def emit(row):  # print and append at once: a long run that is cut keeps what it measured
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")

    if args.part == "memory":
        for family in families:
            arch = smallest_variant(family)
            for what in args.models.split(","):
                proc = subprocess.run([sys.executable, "-W", "ignore", __file__, "--part", "memory",
                                       "--_measure", arch, what], capture_output=True, text=True)
                lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
                row = json.loads(lines[-1][7:]) if lines else {"arch": arch, "model": what,
                                                               "error": proc.stderr[-500:]}
                emit(row)
    else:
        from ppvision_hybrid.adapters import setup_det, setup_seg
        from ppvision_hybrid.datasets.dense_demo import make_dense_demo
        setup_det()
        setup_seg()
        with tempfile.TemporaryDirectory() as tmp:
            demo = make_dense_demo(os.path.join(tmp, "demo"))
            for family in families:
                arch = smallest_variant(family)
                try:
                    got = pipelines(arch, os.path.join(tmp, arch), demo, args.pipelines.split(","))
                except Exception as e:  # report and go on with the next family
                    got = [{"arch": arch, "error": f"{type(e).__name__}: {e}"[:800]}]
                for row in got:
                    emit(row)


if __name__ == "__main__":
    main()
