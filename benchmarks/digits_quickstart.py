"""Digits quickstart benchmark: trains configs/demo/MixFormer_B0_digits.yaml (scikit-learn's
real handwritten digits, no download) and reports validation top-1 and wall time.

    python benchmarks/digits_quickstart.py [-o Section.key=value ...] [--threads 2]

Not a timed test: wall time depends on the machine (the quickstart target is >= 95% top-1 on
2 CPU cores in a few minutes).
"""
import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default=os.path.join(ROOT, "configs", "demo", "MixFormer_B0_digits.yaml"))
    parser.add_argument("-o", "--override", action="append", default=[])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (OMP/MKL and Paddle)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))

    import paddle
    paddle.set_flags({"FLAGS_paddle_num_threads": args.threads})
    from ppvision_hybrid.engine import Engine, get_config

    config = get_config(args.config, args.override)
    start = time.time()
    engine = Engine(config, mode="train")
    best = engine.train()
    train_time = time.time() - start
    final = engine.eval(engine.epochs)
    report = {
        "benchmark": "digits_quickstart", "config": os.path.relpath(args.config, ROOT),
        "overrides": args.override, "epochs": engine.epochs,
        "train_images": len(engine.train_dataset), "val_images": len(engine.eval_dataset),
        "best_val_top1": round(best["metric"], 4), "best_epoch": best["epoch"],
        "final_val_top1": round(final["top1"], 4), "wall_time_s": round(train_time, 1),
        "threads": args.threads, "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
        "paddle": paddle.__version__, "python": platform.python_version(),
        "target_met": best["metric"] >= 0.95,
    }
    print(json.dumps(report))
    return 0 if report["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
