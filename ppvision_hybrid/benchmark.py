"""Latency and throughput of every backend for registered models, beside the authors' figures
(``ppvh-benchmark``, or ``python tools/benchmark.py`` in a checkout; same flags).

    python tools/benchmark.py                                # smallest variant of each family
    python tools/benchmark.py --models TransXNet_T FocalTransformer_T --batch 8 --threads 2
    python tools/benchmark.py --all --backends paddle_onednn,onnxruntime
    python tools/benchmark.py --gpu --trt                    # adds GPU / TensorRT columns
    python tools/benchmark.py --models TransXNet_T --authors_json b1.json b8.json   # vs the authors
    python tools/benchmark.py --write                        # also rewrite the table in docs/benchmarks.md

Backends: ``dygraph`` (eager Paddle), ``dygraph_reparam`` (eager Paddle after
``re_parameterize()``, the inference form), ``paddle_onednn`` / ``paddle_native`` (Paddle Inference
on CPU with oneDNN on / off), ``onnxruntime`` (CPU), and with ``--gpu`` ``dygraph_gpu`` and
``paddle_gpu`` plus, with ``--trt``, ``paddle_trt_fp32`` / ``paddle_trt_fp16``; ``dygraph`` stays on
the CPU on a CUDA build too. A ``--gpu`` run writes its own block of docs/benchmarks.md, so CPU
and GPU tables (usually from different machines) are regenerated independently. For each: median latency at batch 1
(ms) and throughput at ``--batch`` (images/s and ms per image), each after ``--warmup`` untimed
calls. Every backend's output is first compared with dygraph; a backend that fails or differs by
more than 1e-3 shows "n/a". Each model is exported once (dynamic batch, fixed ``--image_size``)
into a temporary folder. The table is printed; ``--write`` also puts it into ``--output``
(docs/benchmarks.md by default, between its generated-block markers), never without it.

``--authors_json`` takes result files of ``benchmarks/vs_authors.py --json`` (the authors' code
timed on the same machine; batch 1 and/or ``--batch``) and adds, per model, every backend's
figure beside the authors' one with the ratio.

Environment set before Paddle loads unless already set (stated in the output):
``MKL_DEBUG_CPU_TYPE=5`` (MKL's AVX2 path on AMD CPUs; it otherwise takes a slow generic path),
``OMP_NUM_THREADS`` and ``FLAGS_paddle_num_threads`` = ``--threads`` (eager Paddle's math
library uses one thread by default), ``KMP_AFFINITY=granularity=fine,compact,1,0`` (Paddle's
OpenMP threads pinned to cores, as predict_cls.py does by default; see inference.CPU_AFFINITY).
This module imports no paddle at import time (it sets that environment first).
"""
import argparse
import copy
import datetime
import os
import platform
import re
import sys
import tempfile

from .inference import CPU_AFFINITY as PIN_AFFINITY  # numpy only: paddle is not imported yet
from .timing import time_calls as _time_calls

#: the checkout holding this package, when there is one (its docs/benchmarks.md is --output)
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"
GPU_BEGIN, GPU_END = "<!-- benchmark-gpu:begin -->", "<!-- benchmark-gpu:end -->"
CPU_BACKENDS = ("dygraph", "dygraph_reparam", "paddle_onednn", "paddle_native", "onnxruntime")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help="names or shell patterns (default: smallest per family)")
    parser.add_argument("--all", action="store_true", help="every registered variant")
    parser.add_argument("--backends", default=",".join(CPU_BACKENDS))
    parser.add_argument("--gpu", action="store_true", help="add Paddle Inference on GPU")
    parser.add_argument("--trt", action="store_true", help="with --gpu: add TensorRT FP32 and FP16")
    parser.add_argument("--batch", type=int, default=8, help="batch size of the throughput runs")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before each batch size's timing")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs at batch 1")
    parser.add_argument("--repeats_batch", type=int, default=3, help="timed runs at --batch")
    parser.add_argument("--output", default=os.path.join(SOURCE_ROOT, "docs", "benchmarks.md"),
                        help="markdown file whose generated block --write replaces (default: the checkout's "
                             "docs/benchmarks.md)")
    parser.add_argument("--write", action="store_true", help="write the table into --output (default: print only)")
    parser.add_argument("--authors_json", nargs="*", default=[], metavar="FILE",
                        help="benchmarks/vs_authors.py --json results to put beside every backend")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write every figure (ms at batch 1, img/s at --batch per backend) to FILE")
    parser.add_argument("--free_intermediates", action="store_true",
                        help="Paddle Inference frees intermediate tensors after their last use (Paddle's default); "
                             "by default they stay allocated between calls, as deploy/configs/inference_cls.yaml ships")
    return parser.parse_args(argv)


def _set_environment(threads):
    chosen = {}
    for key, value in (("MKL_DEBUG_CPU_TYPE", "5"), ("OMP_NUM_THREADS", str(threads)),
                       ("FLAGS_paddle_num_threads", str(threads)),
                       ("KMP_AFFINITY", PIN_AFFINITY)):
        os.environ.setdefault(key, value)
        chosen[key] = os.environ[key]
    return chosen


def machine_description(env):
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        match = re.search(r"model name\s*:\s*(.+)", text)
        cpu = match.group(1).strip() if match else cpu
        flags = re.search(r"flags\s*:\s*(.+)", text)
        isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
               if flags and f" {f} " in f" {flags.group(1)} "]
    except OSError:
        isa = []
    try:
        with open("/proc/meminfo") as f:
            mem_gb = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1)) / 2 ** 20
    except (OSError, AttributeError):
        mem_gb = float("nan")
    import paddle
    versions = [f"paddlepaddle {paddle.__version__}"]
    for module in ("onnxruntime", "paddle2onnx"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    lines = [f"- CPU: {cpu}, {os.cpu_count()} logical cores visible, ISA: {', '.join(isa) or 'n/a'}; "
             f"{mem_gb:.0f} GiB memory; {platform.system()} {platform.release()}",
             f"- Python {platform.python_version()}, {', '.join(versions)}",
             f"- Environment: {', '.join(f'{k}={v}' for k, v in env.items())}",
             f"- Date: {datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}; load average at start: "
             f"{os.getloadavg()[0]:.1f}"]
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count():
        lines.append(f"- GPU: {paddle.device.cuda.get_device_name()}")
    return "\n".join(lines)


def time_calls(fn, warmup, repeats):
    """:func:`ppvision_hybrid.timing.time_calls` (a module-level name, so a test can count calls)."""
    return _time_calls(fn, warmup, repeats)


def _median_ms(fn, warmup, repeats):
    import numpy as np
    return float(np.median(time_calls(fn, warmup, repeats)))


def _runners(name, backend, model, model_dir, onnx_file, threads, batch, keep_intermediates=True):
    """A callable running one batch for ``backend`` (None when unavailable)."""
    import paddle
    from .inference import create_predictor
    if backend in ("dygraph", "dygraph_gpu"):
        place = paddle.CPUPlace()
        if backend == "dygraph_gpu":
            if not paddle.device.is_compiled_with_cuda():
                raise RuntimeError("this Paddle build has no CUDA support")
            place = paddle.CUDAPlace(0)
            model = copy.deepcopy(model).to(device="gpu:0")

        def run(x):
            with paddle.no_grad():
                return model(paddle.to_tensor(x, place=place)).numpy()  # .numpy() waits for the GPU
        return run
    if backend == "dygraph_reparam":
        from .export import deploy_copy
        deployed = deploy_copy(model)

        def run(x):
            with paddle.no_grad():
                return deployed(paddle.to_tensor(x)).numpy()
        return run
    if backend in ("paddle_onednn", "paddle_native"):
        return create_predictor(model_dir, enable_mkldnn=backend == "paddle_onednn", cpu_threads=threads,
                                keep_intermediates=keep_intermediates)
    if backend == "onnxruntime":
        if onnx_file is None:
            return None
        from .onnx import onnx_session, run_onnx
        session = _unpinned(lambda: onnx_session(onnx_file, threads))
        return lambda x: run_onnx(session, x)
    if backend == "paddle_gpu":
        return create_predictor(model_dir, use_gpu=True, keep_intermediates=keep_intermediates)
    if backend.startswith("paddle_trt"):
        precision = backend.rsplit("_", 1)[1]
        return create_predictor(model_dir, use_gpu=True, use_tensorrt=True, precision=precision,
                                max_batch_size=batch, keep_intermediates=keep_intermediates)
    raise ValueError(f"unknown backend {backend}")


def _unpinned(create):
    """``create()`` from a thread free to run on every core. Paddle's OpenMP binds this process's
    main thread to one core (``KMP_AFFINITY``, set for the predictors) once a Paddle backend has
    run, and the threads ONNX Runtime starts inherit that binding: all of them would share one
    core. The main thread keeps its binding afterwards."""
    if not hasattr(os, "sched_getaffinity"):
        return create()
    bound = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, range(os.cpu_count()))
    except OSError:  # a container that does not lend every core
        return create()
    try:
        return create()
    finally:
        os.sched_setaffinity(0, bound)


def benchmark_model(name, backends, args, log=print):
    import numpy as np
    import paddle
    from .export import export_inference_model
    from .registry import create_model
    size = args.image_size
    if paddle.device.is_compiled_with_cuda():
        paddle.set_device("cpu")  # the reference and "dygraph" run on the CPU; dygraph_gpu copies the model
    paddle.seed(0)
    model = create_model(name)
    model.eval()
    params = sum(int(np.prod(p.shape)) for p in model.parameters()) / 1e6
    row = {"model": name, "params_m": params}
    with tempfile.TemporaryDirectory(prefix="ppvh_bench_") as tmp:
        model_dir = os.path.join(tmp, "paddle")
        export_inference_model(model, model_dir, image_shape=(3, size, size), dynamic_hw=False)
        onnx_file = None
        if "onnxruntime" in backends:
            from .onnx import ConversionError, VerificationError, convert_and_verify
            onnx_file = os.path.join(tmp, "model.onnx")
            try:
                convert_and_verify(model_dir, onnx_file, shapes=[(1, 3, size, size)], threads=args.threads,
                                   log=lambda *a: None)
            except (ConversionError, VerificationError) as err:
                log(f"  {name}: ONNX unavailable: {str(err)[:200]}")
                onnx_file = None
        rng = np.random.RandomState(0)
        x1 = rng.standard_normal((1, 3, size, size)).astype("float32")
        xb = rng.standard_normal((args.batch, 3, size, size)).astype("float32")
        from .inference import relative_error
        with paddle.no_grad():
            reference = model(paddle.to_tensor(x1)).numpy()
        for backend in backends:
            try:
                run = _runners(name, backend, model, model_dir, onnx_file, args.threads, args.batch,
                               keep_intermediates=not args.free_intermediates)
            except Exception as err:  # a backend that cannot run this model is reported, not fatal
                log(f"  {name} {backend}: unavailable ({str(err).splitlines()[0][:160]})")
                run = None
            if run is None:
                row[backend] = (None, None)
                continue
            try:
                err = relative_error(run(x1), reference)
                if not err <= 1e-3:  # a fast wrong answer is not a result
                    log(f"  {name} {backend}: WRONG OUTPUT (relative error {err:.1e} vs dygraph)")
                    row[backend] = (None, None)
                    continue
                latency = _median_ms(lambda: run(x1), args.warmup, args.repeats)
                batch_ms = _median_ms(lambda: run(xb), args.warmup, args.repeats_batch)
            except Exception as err:  # e.g. oneDNN kernels failing on this graph
                log(f"  {name} {backend}: failed at run time ({str(err).splitlines()[0][:160]})")
                row[backend] = (None, None)
                continue
            row[backend] = (latency, args.batch * 1e3 / batch_ms)
            log(f"  {name} {backend}: batch 1 {latency:.1f} ms, batch {args.batch} {row[backend][1]:.2f} img/s "
                f"({batch_ms / args.batch:.1f} ms/img)")
            del run
    return row


def markdown_table(rows, backends, batch):
    header = (["model", "params (M)"] + [f"{b} b1 ms" for b in backends]
              + [f"{b} b{batch} img/s (ms/img)" for b in backends])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["model"], f"{row['params_m']:.1f}"]
        cells += [f"{row[b][0]:.1f}" if row[b][0] is not None else "n/a" for b in backends]
        cells += [f"{row[b][1]:.2f} ({1e3 / row[b][1]:.1f})" if row[b][1] is not None else "n/a" for b in backends]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_authors_results(paths):
    """``{model: [result, ...]}`` from ``benchmarks/vs_authors.py --json`` files (inference only;
    several anchors per model, e.g. eager, jit.trace and ONNX Runtime, at batch 1 and 8)."""
    import json
    results = {}
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        if result.get("mode", "infer") != "infer":
            raise SystemExit(f"{path}: a {result.get('mode')} result; --authors_json takes inference results")
        results.setdefault(result["model"], []).append(result)
    return results


def authors_table(rows, backends, batch, authors):
    """Per model with authors' figures at batch 1 or ``batch``: every backend's ms per image beside
    each of them, with the ratio."""
    lines = []
    for row in rows:
        figures = [a for a in authors.get(row["model"], []) if int(a["batch"]) in (1, batch)]
        if not figures:
            continue
        header = ["backend"] + [f"b{a['batch']} ms/img" for a in figures] + [
            f"ratio to {a['authors']}, b{a['batch']}, {a['threads']} threads: {a['authors_ms'] / a['batch']:.1f} ms/img"
            for a in figures]
        lines += ["", f"{row['model']} against the authors' code (same machine):", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for backend in backends:
            latency, throughput = row[backend]
            mine = {1: latency, batch: 1e3 / throughput if throughput else None}
            cells, ratios = [backend], []
            for a in figures:
                ms = mine.get(int(a["batch"]))
                cells.append(f"{ms:.1f}" if ms is not None else "n/a")
                ratios.append(f"{ms / (a['authors_ms'] / a['batch']):.2f}" if ms is not None else "n/a")
            lines.append("| " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def write_report(path, block, markers=(BEGIN, END)):
    """Replace the generated block of ``path`` between ``markers``, keeping everything else."""
    begin, end = markers
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
    generated = f"{begin}\n{block}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + generated + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main(argv=None):
    args = parse_args(argv)
    env = _set_environment(args.threads)
    from .registry import list_models, smallest_per_family
    if args.all:
        names = list_models()
    elif args.models:
        names = sorted({n for pattern in args.models for n in list_models(pattern)})
        if not names:
            raise SystemExit(f"no registered model matches {args.models}")
    else:
        names = smallest_per_family()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.gpu:
        backends += ["dygraph_gpu", "paddle_gpu"]
        if args.trt:
            backends += ["paddle_trt_fp32", "paddle_trt_fp16"]
    description = machine_description(env)
    description += ("\n- Paddle Inference predictors: intermediate tensors "
                    + ("freed after their last use (Paddle's default)" if args.free_intermediates
                       else "kept allocated between calls (keep_intermediates, as inference_cls.yaml ships)"))
    print(description)
    authors = load_authors_results(args.authors_json)
    rows = [benchmark_model(name, backends, args) for name in names]
    table = markdown_table(rows, backends, args.batch)
    against = authors_table(rows, backends, args.batch, authors)
    if against:
        table += "\n" + against
    block = (f"Generated by `python tools/benchmark.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
             f" ({args.image_size}x{args.image_size}, fp32, {args.threads} threads; median of "
             f"{args.repeats} runs at batch 1 and {args.repeats_batch} at batch {args.batch}, each after "
             f"{args.warmup} warm-up runs).\n\n"
             f"{description}\n\n{table}")
    print(table)
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump(dict(batch=args.batch, threads=args.threads, image_size=args.image_size,
                           machine=description, rows=rows), f, indent=1)
    if args.write:
        write_report(args.output, block, (GPU_BEGIN, GPU_END) if args.gpu else (BEGIN, END))
        print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
