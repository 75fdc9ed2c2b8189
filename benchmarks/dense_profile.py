"""Why the backbone pyramid is slow at dense resolution (issue 25, goal 4): time per MAC at
800x1333 against 224x224, the share of the fp32 GEMM peak, and which ops grow faster than the MACs.

    python benchmarks/dense_profile.py --threads 1                   # smallest variant of each family
    python benchmarks/dense_profile.py --models MAFormer_S --height 800 --width 1333 --top 12

Per model (``features_only=True``, batch 1, eager, ``paddle.no_grad``): the MACs at both sizes
(``ppvision_hybrid.flops.count_macs``), the median wall and CPU time of ``--steps`` calls after
one warm-up, the achieved GFLOP/s (2 x MACs / CPU time) and its share of the fp32 GEMM peak
measured in the same process (the better of ``paddle.matmul`` and numpy, 2048 x 2048, same threads), the
time per MAC at the dense size over that at 224 (goal: <= 1.2), then the ops by time per call at
the dense size (paddle.profiler; the fast kernels' forward timed by hand, as in
benchmarks/profile_ops.py) with each op's growth from 224 divided by the MAC growth: an op above
1 grows faster than the work (quadratic attention, per-pixel overheads), one below 1 slower.
With ``--saved-graph`` the model is also exported (dynamic H/W) and timed in Paddle Inference
with oneDNN at both sizes.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
SMALLEST = ["TransXNet_T", "FocalTransformer_T", "MixFormer_B0", "MAFormer_S", "DualFormer_T"]


def gemm_rates(size=2048, repeats=5):
    """fp32 GEMM GFLOP/s of ``paddle.matmul`` and numpy's ``@`` at the current thread count, each
    by wall time and by CPU time of the process (best of ``repeats`` calls):
    ``{label: {"wall": ..., "cpu": ...}}``."""
    import numpy as np
    import paddle
    a = np.random.RandomState(0).standard_normal((size, size)).astype("float32")
    t = paddle.to_tensor(a)
    figures = {}
    for label, call in (("paddle.matmul", lambda: paddle.matmul(t, t).numpy()), ("numpy", lambda: a @ a)):
        call()
        wall, cpu = float("inf"), float("inf")
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            call()
            wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
        figures[label] = dict(wall=2 * size ** 3 / wall / 1e9, cpu=2 * size ** 3 / cpu / 1e9)
    return figures


def gemm_peak_gflops(size=2048, repeats=5):
    """fp32 GEMM GFLOP/s at the current thread count by CPU time (as the models' figures): the
    better of ``paddle.matmul`` and numpy's ``@`` (best of ``repeats`` each), with both figures."""
    figures = {label: rates["cpu"] for label, rates in gemm_rates(size, repeats).items()}
    return max(figures.values()), figures


def op_growth(small, large, mac_ratio):
    """Rows ``(op, ms at the large size, share, ms at the small size, growth / MAC growth)`` sorted
    by the large size's time; ``small`` / ``large`` are ``[(op, calls, ms)]``."""
    small_ms = {name: ms for name, _, ms in small}
    total = sum(ms for _, _, ms in large) or 1.0
    rows = []
    for name, _, ms in sorted(large, key=lambda r: -r[2]):
        base = small_ms.get(name, 0.0)
        rows.append((name, ms, ms / total, base, (ms / base / mac_ratio) if base > 0 else float("inf")))
    return rows


def measure(name, sizes, args, peak):
    import numpy as np
    import paddle
    import profile_ops
    import ppvision_hybrid
    from ppvision_hybrid.flops import count_macs
    paddle.seed(0)
    model = ppvision_hybrid.create_model(name, features_only=True)
    model.eval()
    result = dict(model=name, sizes={})
    for h, w in sizes:
        macs = count_macs(model, (3, h, w))
        x = paddle.to_tensor(np.random.RandomState(0).standard_normal((1, 3, h, w)).astype("float32"))

        def step():
            with paddle.no_grad():
                model(x)
        step()
        wall, cpu = profile_ops.timed(step, args.steps)
        ops = profile_ops.paddle_op_table(step, 1) if args.top else []
        wall_ms, cpu_ms = profile_ops._median(wall), profile_ops._median(cpu)
        result["sizes"][f"{h}x{w}"] = dict(macs=macs, wall_ms=wall_ms, cpu_ms=cpu_ms, ops=ops,
                                           gflops=2 * macs / cpu_ms / 1e6,
                                           peak_share=2 * macs / cpu_ms / 1e6 / peak,
                                           ns_per_mac=cpu_ms * 1e6 / macs)
        print(f"{name} {h}x{w}: {macs / 1e9:.2f} GMACs, {cpu_ms:.0f} ms CPU ({wall_ms:.0f} wall), "
              f"{2 * macs / cpu_ms / 1e6:.1f} GFLOP/s = {100 * 2 * macs / cpu_ms / 1e6 / peak:.1f}% of peak", flush=True)
    if args.saved_graph:
        result["saved_graph"] = saved_graph_times(model, sizes, args)
    return result


def saved_graph_times(model, sizes, args):
    """CPU ms of the exported pyramid in Paddle Inference (oneDNN on) at each size."""
    import tempfile
    import numpy as np
    from ppvision_hybrid.export import export_inference_model
    from ppvision_hybrid.inference import create_predictor
    import profile_ops
    out = {}
    with tempfile.TemporaryDirectory(prefix="ppvh_dense_") as tmp:
        export_inference_model(model, tmp + "/m", image_shape=(3, sizes[0][0], sizes[0][1]), dynamic_hw=True)
        run = create_predictor(tmp + "/m", enable_mkldnn=True, cpu_threads=args.threads)
        for h, w in sizes:
            x = np.random.RandomState(0).standard_normal((1, 3, h, w)).astype("float32")
            run(x)
            wall, cpu = profile_ops.timed(lambda: run(x), args.steps)
            out[f"{h}x{w}"] = dict(wall_ms=profile_ops._median(wall), cpu_ms=profile_ops._median(cpu))
            print(f"  saved graph (oneDNN) {h}x{w}: {out[f'{h}x{w}']['cpu_ms']:.0f} ms CPU "
                  f"({out[f'{h}x{w}']['wall_ms']:.0f} wall)", flush=True)
    return out


def report(result, top):
    (small_key, small), (large_key, large) = list(result["sizes"].items())
    mac_ratio = large["macs"] / small["macs"]
    per_mac = large["ns_per_mac"] / small["ns_per_mac"]
    lines = [f"\n{result['model']}: time per MAC at {large_key} / at {small_key} = {per_mac:.2f}; "
             f"{100 * large['peak_share']:.1f}% of the GEMM peak ({100 * small['peak_share']:.1f}% at {small_key})"]
    if top:
        lines += [f"| op | ms at {large_key} | share | ms at {small_key} | growth / MAC growth ({mac_ratio:.1f}x) |",
                  "|---|---|---|---|---|"]
        for name, ms, share, base, growth in op_growth(small["ops"], large["ops"], mac_ratio)[:top]:
            lines.append(f"| {name} | {ms:.0f} | {100 * share:.1f}% | {base:.1f} | {growth:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=SMALLEST)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1333)
    parser.add_argument("--base-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1, help="timed calls per size (after one warm-up)")
    parser.add_argument("--top", type=int, default=10, help="ops listed per model (0: no profile)")
    parser.add_argument("--saved-graph", action="store_true", help="also time the export in Paddle Inference")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    env = {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "FLAGS_paddle_num_threads": str(args.threads), "MKL_DEBUG_CPU_TYPE": "5"}
    for key, value in env.items():  # before Paddle loads
        os.environ.setdefault(key, value)
    sys.path.insert(0, ROOT)
    peak, figures = gemm_peak_gflops()
    print(f"fp32 GEMM peak (2048^2, {args.threads} thread(s)): {peak:.1f} GFLOP/s ("
          + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()) + ")", flush=True)
    sizes = [(args.base_size, args.base_size), (args.height, args.width)]
    results = []
    for name in args.models:
        result = measure(name, sizes, args, peak)
        print(report(result, args.top), flush=True)
        results.append(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), gemm_peak_gflops=peak, results=results), f, indent=1)
    return results


if __name__ == "__main__":
    main()
