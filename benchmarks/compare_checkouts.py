"""Latency of two checkouts of this repository side by side: their exports in Paddle Inference
(each checkout's own predictor defaults) and their eager models, in alternating processes.

    git worktree add /tmp/base <commit>            # or: git archive <commit> | tar -x -C /tmp/base
    python benchmarks/compare_checkouts.py --before /tmp/base --after . \\
        --models TransXNet_T FocalTransformer_T MixFormer_B4 --threads 1 2 --rounds 4

Each checkout exports every model once (dynamic batch, fixed ``--image_size``, no softmax, with
its own ``export_inference_model``). Then, per round, model and thread count, one process per
checkout (order alternating between rounds, A B then B A) builds that checkout's predictor
(``create_predictor`` with its defaults, ``keep_intermediates=True`` as
deploy/configs/inference_cls.yaml ships, threads pinned) and reports the median of ``--repeats``
calls at batch 1 after ``--warmup``. With ``--eager`` the same processes time the eager model
(``paddle.no_grad``), and the ``--after`` checkout also times it after ``re_parameterize()``.
Every run is printed; the summary gives each side's median over rounds and the ratio after /
before. ``--interleave N`` instead builds both predictors in one process per model and thread
count (each with its own checkout's ``ppvision_hybrid/inference.py``) and alternates single calls,
A B then B A, N pairs; it reports the median of the per-pair ratios, which drifts less on a
shared machine. Environment as tools/benchmark.py: ``MKL_DEBUG_CPU_TYPE=5``, ``OMP_NUM_THREADS``,
``FLAGS_paddle_num_threads``, ``KMP_AFFINITY`` pinning (unless already set).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PIN_AFFINITY = "granularity=fine,compact,1,0"

_EXPORT = """
import sys
sys.path.insert(0, sys.argv[1])
import paddle, ppvision_hybrid
from ppvision_hybrid.export import export_inference_model
for name in sys.argv[4:]:
    paddle.seed(0)
    model = ppvision_hybrid.create_model(name)
    model.eval()
    export_inference_model(model, sys.argv[2] + "/" + name, image_shape=(3, int(sys.argv[3]), int(sys.argv[3])))
"""

_INTERLEAVE = """
import importlib.util, json, sys, time
import numpy as np
before, after, dir_b, dir_a, size, threads, pairs = sys.argv[1:8]
size, threads, pairs = int(size), int(threads), int(pairs)

def load(root, name):  # inference.py imports only paddle and numpy: loadable on its own
    spec = importlib.util.spec_from_file_location(name, root + "/ppvision_hybrid/inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

x = np.random.RandomState(0).standard_normal((1, 3, size, size)).astype("float32")
predictors = [load(root, f"side{i}").create_predictor(d, cpu_threads=threads, keep_intermediates=True)
              for i, (root, d) in enumerate(((before, dir_b), (after, dir_a)))]
for p in predictors:
    for _ in range(3):
        p(x)
times = [[], []]
for i in range(pairs):
    for side in ((0, 1) if i % 2 == 0 else (1, 0)):
        t0 = time.perf_counter()
        predictors[side](x)
        times[side].append((time.perf_counter() - t0) * 1e3)
ratios = [a / b for a, b in zip(times[1], times[0])]
print("RESULT " + json.dumps({"before": float(np.median(times[0])), "after": float(np.median(times[1])),
                              "ratio": float(np.median(ratios))}))
"""

_TIME = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
root, model_dir, name, size, threads, warmup, repeats, eager = sys.argv[1:9]
size, threads, warmup, repeats = int(size), int(threads), int(warmup), int(repeats)
from ppvision_hybrid.inference import create_predictor
from ppvision_hybrid.timing import time_calls

def median_ms(fn):
    return float(np.median(time_calls(fn, warmup, repeats)))

x = np.random.RandomState(0).standard_normal((1, 3, size, size)).astype("float32")
predictor = create_predictor(model_dir, cpu_threads=threads, keep_intermediates=True)
result = {"predictor": median_ms(lambda: predictor(x))}
del predictor
if eager == "1":
    import paddle, ppvision_hybrid
    paddle.seed(0)
    model = ppvision_hybrid.create_model(name)
    model.eval()
    tensor = paddle.to_tensor(x)
    with paddle.no_grad():
        result["eager"] = median_ms(lambda: model(tensor))
        if hasattr(model, "re_parameterize"):
            model.re_parameterize()
            result["eager_reparameterized"] = median_ms(lambda: model(tensor))
print("RESULT " + json.dumps(result))
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="checkout A (the baseline)")
    parser.add_argument("--after", required=True, help="checkout B")
    parser.add_argument("--models", nargs="+", default=["TransXNet_T", "FocalTransformer_T", "MixFormer_B4"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--eager", action="store_true", help="also time the eager models")
    parser.add_argument("--interleave", type=int, default=0, metavar="N",
                        help="one process per model and thread count, N alternating pairs of calls")
    return parser.parse_args(argv)


def _environment(threads):
    env = dict(os.environ)
    for key, value in (("MKL_DEBUG_CPU_TYPE", "5"), ("OMP_NUM_THREADS", str(threads)),
                       ("FLAGS_paddle_num_threads", str(threads)), ("KMP_AFFINITY", PIN_AFFINITY)):
        env.setdefault(key, value)
    return env


def _run(code, args, env=None):
    proc = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args], capture_output=True,
                          text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"child failed ({args[:3]}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def main(argv=None):
    args = parse_args(argv)
    sides = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    with tempfile.TemporaryDirectory() as work:
        for side, root in sides.items():
            print(f"exporting with {side} ({root})", flush=True)
            _run(_EXPORT, [root, os.path.join(work, side), args.image_size] + args.models)
        if args.interleave:
            return _interleaved(args, sides, work)
        runs = {}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in args.models:
                for threads in args.threads:
                    for side in order:
                        out = _run(_TIME, [sides[side], os.path.join(work, side, name), name, args.image_size,
                                           threads, args.warmup, args.repeats, int(args.eager)],
                                   env=_environment(threads))
                        result = json.loads(out.split("RESULT ", 1)[1])
                        print(f"round {r} {name} {threads} thread(s) {side}: "
                              + ", ".join(f"{k} {v:.1f} ms" for k, v in result.items()), flush=True)
                        for key, value in result.items():
                            runs.setdefault((name, threads, key, side), []).append(value)
    print("\nmedian over rounds (ms); ratio after / before")
    for name in args.models:
        for threads in args.threads:
            for key in ("predictor", "eager"):
                if (name, threads, key, "before") not in runs:
                    continue
                before = statistics.median(runs[(name, threads, key, "before")])
                after = statistics.median(runs[(name, threads, key, "after")])
                line = f"{name} {threads}t {key}: before {before:.1f}, after {after:.1f} ({after / before:.2f})"
                if (name, threads, "eager_reparameterized", "after") in runs:
                    if key == "eager":
                        rep = statistics.median(runs[(name, threads, "eager_reparameterized", "after")])
                        line += f", after re_parameterize() {rep:.1f} ({rep / before:.2f})"
                print(line)
    return runs


def _interleaved(args, sides, work):
    results = {}
    for r in range(args.rounds):
        for name in args.models:
            for threads in args.threads:
                out = _run(_INTERLEAVE, [sides["before"], sides["after"], os.path.join(work, "before", name),
                                         os.path.join(work, "after", name), args.image_size, threads,
                                         args.interleave], env=_environment(threads))
                result = json.loads(out.split("RESULT ", 1)[1])
                results.setdefault((name, threads), []).append(result)
                print(f"round {r} {name} {threads} thread(s): before {result['before']:.1f} ms, after "
                      f"{result['after']:.1f} ms, median pair ratio {result['ratio']:.3f}", flush=True)
    print("\nmedian pair ratio after / before, per run")
    for (name, threads), rows in results.items():
        print(f"{name} {threads}t: " + ", ".join(f"{row['ratio']:.2f}" for row in rows))
    return results


if __name__ == "__main__":
    main()
