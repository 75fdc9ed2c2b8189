"""Our model against the authors' released code, measured back to back on the same machine:
inference latency (any backend, any batch) or a full training step.

Getting the authors' code: ``bash benchmarks/get_authors_code.sh /tmp/authors`` fetches the three
files this project measures (LMMMEng/TransXNet, microsoft/Focal-Transformer, the official
MixFormer from its PaddleClas pull request) at pinned commits. Their mmcv / timm / PaddleClas
imports are served by our own stand-ins in ``benchmarks/authors_shims`` (appended to the authors'
import path, so real installed packages win). ``--authors-python`` is an interpreter that can run
the authors' code (torch for the PyTorch releases; add onnx and onnxruntime for
``--authors-runtime onnxruntime``).

    # TransXNet-T, batch 1, our Paddle Inference + oneDNN against the authors' eager PyTorch
    python benchmarks/vs_authors.py --model TransXNet_T --authors-python /venv-torch/bin/python \\
        --authors-path /tmp/authors/TransXNet/models --authors-build transxnet:transxnet_t \\
        --threads 2 --interleave 20 --runs 3 --max-ratio 0.6

    # what a PyTorch user deploys: torch.jit.trace + freeze + optimize_for_inference, or
    # torch.onnx.export in ONNX Runtime
    ... --trace                     # = --authors-runtime trace
    ... --authors-runtime onnxruntime

    # a training step (forward, backward, AdamW) at batch 8, both sides eager; peak memory too
    ... --mode train --batch 8 --threads 2 --rounds 3 \\
        --authors-kwargs '{"drop_path_rate": 0.1}'

    python benchmarks/vs_authors.py --model FocalTransformer_T \\
        --authors-path /tmp/authors/Focal-Transformer/classification \\
        --authors-build focal_transformer:FocalTransformer \\
        --authors-kwargs '{"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24],
                          "focal_levels": [2, 2, 2, 2], "focal_windows": [7, 5, 3, 1],
                          "expand_sizes": [3, 3, 3, 3]}' ...

    # the official MixFormer is Paddle code: timed in dygraph, as its users run it
    python benchmarks/vs_authors.py --model MixFormer_B4 --authors-framework paddle \\
        --authors-python python --authors-path /tmp/authors/mixformer \\
        --authors-build ppcls.arch.backbone.model_zoo.mixformer:MixFormer_B4

Our side (``--ours``): ``predictor`` (Paddle Inference, oneDNN unless ``--no-onednn``; threads
pinned with ``KMP_AFFINITY`` unless ``--no-pin``; intermediates kept unless
``--free-intermediates``), ``dygraph`` (eager Paddle, what training and fine-tuning run) or
``onnxruntime`` (our exported model converted to ONNX). Training steps are eager on both sides.

Each contender runs in its own process -- PyTorch and Paddle in one process slow each other down
through their OpenMP/MKL runtimes. ``--rounds N``: the processes alternate N times, each timing
``--repeats`` calls; reported is the median over rounds of each process's median.
``--interleave N``: both processes stay alive and take single calls in turn (ABBA order,
``--gap-ms`` apart), N per side; the median of the per-pair ratios is reported too.

``--runs R`` repeats the whole measurement R times and reports every run's ratio and the median
of the runs (one run of this benchmark on a shared host does not settle a goal: three 20-pair
runs of one setting gave 0.80, 0.79 and 0.82). ``--max-ratio R`` judges that median and needs
``--runs 3`` or more; the run exits with status 1 when it is missed. ``--json FILE`` writes every
figure (``tools/benchmark.py --authors-json`` puts them beside its backends).

The exported model is written once: with ``--model-dir`` an existing export there is reused
(and so is the authors' ONNX file), without it a temporary folder is used. Our output is
checked against our dygraph model (relative error <= 1e-4) before it is timed.

Not a timed test: numbers depend on the machine.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHIMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "authors_shims")
EXPECTED = "expected.npy"  # our dygraph output for the check input, next to the export
MIN_RUNS_FOR_GOAL = 3


def _thread_env(threads, pin=False):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               FLAGS_paddle_num_threads=str(threads))
    # Both sides: MKL's AVX2 path on AMD CPUs (the MKL in Paddle's wheel otherwise takes a slow
    # generic path; the official MixFormer in dygraph, 2 threads: 446 -> 325 ms on the AMD EPYC
    # host). Newer MKLs, such as PyTorch's, ignore it. tools/benchmark.py sets it too.
    env.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    # Both sides: glibc keeps freed tensor-sized blocks (what ``import ppvision_hybrid`` sets with
    # mallopt, ppvision_hybrid/cpu_memory.py). PyTorch gains from it as much as Paddle does, and
    # the authors' process imports our timer, so it is set for both, from the start, explicitly.
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from ppvision_hybrid.cpu_memory import MMAP_THRESHOLD, TRIM_THRESHOLD  # standard library only
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    if pin:  # Intel OpenMP (Paddle's) only; the authors' PyTorch uses GNU OpenMP, which ignores it
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        from ppvision_hybrid.inference import CPU_AFFINITY as PIN_AFFINITY  # numpy only, no paddle
        env.setdefault("KMP_AFFINITY", PIN_AFFINITY)
    return env


def _timer():
    """The project's timer, :mod:`ppvision_hybrid.timing` (standard library only; the package is
    lazy, so this imports no paddle, which the authors' interpreter may lack)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from ppvision_hybrid.timing import time_calls
    return time_calls


def _peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _time_or_serve(run, args, info):
    """A round's child: time ``repeats`` calls and print one JSON line. With ``--serve`` (the
    interleaved mode): warm up, print a ready line, then time one call per ``run`` line on stdin
    and print its milliseconds; when stdin closes, print the peak memory. The process's CPU time
    per call (all its threads) comes too: on a shared host it moves less than the wall time,
    which counts the time the process waits for a core."""
    time_calls = _timer()
    if not args.serve:
        time_calls(run, args.warmup, 0)
        cpu0 = time.process_time()
        times = time_calls(run, 0, args.repeats)
        cpu_ms = (time.process_time() - cpu0) * 1e3 / max(1, args.repeats)
        print(json.dumps(dict(info, median_ms=times[len(times) // 2], min_ms=times[0], cpu_ms=cpu_ms,
                              peak_rss_mb=_peak_rss_mb())), flush=True)
        return
    time_calls(run, args.warmup, 0)
    print(json.dumps(dict(info, ready=True)), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        cpu0 = time.process_time()
        ms = time_calls(run, 0, 1)[0]
        print(json.dumps(dict(ms=ms, cpu_ms=(time.process_time() - cpu0) * 1e3)), flush=True)
    print(json.dumps(dict(done=True, peak_rss_mb=_peak_rss_mb())), flush=True)


def image_hw(image_size):
    """``(height, width)`` from ``--image-size`` ("224" or "800x1333")."""
    parts = str(image_size).lower().split("x")
    if len(parts) == 1:
        parts *= 2
    try:
        return tuple(int(p) for p in parts[:2]) if len(parts) == 2 else None
    except ValueError:
        return None


def _inputs(args, batch):
    import numpy as np
    rng = np.random.RandomState(0)
    x = rng.standard_normal((batch, 3) + image_hw(args.image_size)).astype("float32")
    labels = rng.randint(0, 1000, size=(batch,)).astype("int64")
    return x, labels


def build_authors_model(args):
    """The authors' model from their checkout (``--authors-path``, then our stand-ins)."""
    import importlib
    for path in reversed([p for p in args.authors_path.split(os.pathsep) if p]):
        sys.path.insert(0, path)
    sys.path.append(SHIMS)
    module_name, _, builder = args.authors_build.partition(":")
    return getattr(importlib.import_module(module_name), builder)(**json.loads(args.authors_kwargs))


def torch_training_step(model, x, labels, threads):
    """One forward, backward and AdamW step of a PyTorch model (cross-entropy on ``labels``)."""
    import torch
    torch.set_num_threads(threads)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        optimizer.step()
    return step


def paddle_training_step(model, x, labels):
    """One forward, backward and AdamW step of a Paddle model in dygraph."""
    import paddle
    model.train()
    optimizer = paddle.optimizer.AdamW(learning_rate=1e-4, parameters=model.parameters(), weight_decay=0.05)
    xp, yp = paddle.to_tensor(x), paddle.to_tensor(labels)

    def step():
        paddle.nn.functional.cross_entropy(model(xp), yp).backward()
        optimizer.step()
        optimizer.clear_grad(set_to_zero=False)
    return step


def _authors_onnx_path(args):
    build = args.authors_build.replace(":", "_").replace(".", "_")
    name = f"authors_{build}_b{args.batch}_{args.image_size}.onnx"
    return os.path.join(args.model_dir, name) if args.model_dir else os.path.join(tempfile.mkdtemp(), name)


def authors_inference(model, x, args):
    """A callable running the authors' PyTorch model on ``x`` with ``--authors-runtime``."""
    import torch
    torch.set_num_threads(args.threads)
    model.eval()
    xt = torch.from_numpy(x)
    if args.authors_runtime == "eager":
        def run():
            with torch.no_grad():
                model(xt)
        return run
    if args.authors_runtime == "trace":  # what a PyTorch user deploys on CPU without leaving torch
        with torch.no_grad():
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, xt).eval()))
            for _ in range(2):  # the profiling executor specialises on the first calls
                traced(xt)

        def run():
            with torch.no_grad():
                traced(xt)
        return run
    import onnxruntime as ort
    path = _authors_onnx_path(args)
    if not os.path.exists(path):
        partial = path + f".{os.getpid()}.partial"
        export_kwargs = dict(input_names=["x"], output_names=["y"], opset_version=17)
        import inspect
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:
            export_kwargs["dynamo"] = False  # the TorchScript exporter: what runs these models today
        with torch.no_grad():
            torch.onnx.export(model, (xt,), partial, **export_kwargs)
        os.replace(partial, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {session.get_inputs()[0].name: x})


def child_authors(args):
    """Runs in ``--authors-python``: build the authors' model from their checkout and time it."""
    model = build_authors_model(args)
    x, labels = _inputs(args, args.batch)
    if args.authors_framework == "torch":
        if args.mode == "train":
            run = torch_training_step(model, x, labels, args.threads)
        else:
            run = authors_inference(model, x, args)
    else:
        import paddle
        if args.mode == "train":
            run = paddle_training_step(model, x, labels)
        else:
            model.eval()
            xp = paddle.to_tensor(x)

            def run():
                with paddle.no_grad():
                    model(xp)
    _time_or_serve(run, args, dict(side="authors"))


def _relative_error(out, expected):
    import numpy as np
    return float(np.abs(np.asarray(out) - expected).max() / np.abs(expected).max())


def child_ours(args):
    """Runs in this interpreter: time our model (``--ours`` backend, or a training step)."""
    import numpy as np
    sys.path.insert(0, ROOT)
    x, labels = _inputs(args, args.batch)
    check = _inputs(args, 1)[0]
    if args.mode == "train" or args.ours == "dygraph":
        import paddle
        model = _our_model(args)
        if args.mode == "train":
            _time_or_serve(paddle_training_step(model, x, labels), args, dict(side="ours"))
            return
        xp = paddle.to_tensor(x)

        def run():
            with paddle.no_grad():
                model(xp)
        _time_or_serve(run, args, dict(side="ours"))
        return
    expected = np.load(os.path.join(args.model_dir, EXPECTED))
    if args.ours == "onnxruntime":
        from ppvision_hybrid.onnx import onnx_session, run_onnx
        session = onnx_session(os.path.join(args.model_dir, "model.onnx"), args.threads)
        predict = (lambda v: run_onnx(session, v))
    else:
        from ppvision_hybrid.inference import create_predictor
        predict = create_predictor(args.model_dir, enable_mkldnn=not args.no_onednn, cpu_threads=args.threads,
                                   keep_intermediates=not args.free_intermediates)
    error = _relative_error(predict(check), expected)
    if error > 1e-4:
        raise SystemExit(f"exported model differs from dygraph: relative error {error:.2e}")
    _time_or_serve(lambda: predict(x), args, dict(side="ours", rel_error=error))


def _our_model(args):
    import paddle
    import ppvision_hybrid
    paddle.seed(0)
    model = ppvision_hybrid.create_model(args.model, **json.loads(args.ours_kwargs))
    model.eval()
    return model


def _export_is_there(model_dir):
    names = os.listdir(model_dir) if os.path.isdir(model_dir) else []
    return EXPECTED in names and any(n.startswith("inference.") for n in names)


def prepare_ours(args):
    """Export our model into ``args.model_dir`` unless an export is already there (and convert it
    to ONNX for ``--ours onnxruntime``). Nothing to do for eager runs."""
    if args.mode == "train" or args.ours == "dygraph":
        return
    import numpy as np
    sys.path.insert(0, ROOT)
    if _export_is_there(args.model_dir):
        print(f"reusing the export in {args.model_dir}", flush=True)
    else:
        import paddle
        from ppvision_hybrid.export import export_inference_model
        model = _our_model(args)
        export_inference_model(model, args.model_dir, image_shape=(3,) + image_hw(args.image_size))
        with paddle.no_grad():
            expected = model(paddle.to_tensor(_inputs(args, 1)[0])).numpy()
        np.save(os.path.join(args.model_dir, EXPECTED), expected)
    onnx_file = os.path.join(args.model_dir, "model.onnx")
    if args.ours == "onnxruntime" and not os.path.exists(onnx_file):
        from ppvision_hybrid.onnx import convert_and_verify
        convert_and_verify(args.model_dir, onnx_file, shapes=[(1, 3) + image_hw(args.image_size)],
                           threads=args.threads, log=lambda *a: None)


def _run_child(python, side, args):
    cmd = [python, os.path.abspath(__file__), "--child", side] + _forward_args(args)
    done = subprocess.run(cmd, env=_thread_env(args.threads, _pinned(side, args)), capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side} run failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def _pinned(side, args):
    return side == "ours" and not args.no_pin and args.ours == "predictor" and args.mode == "infer"


class _Server:
    """One side kept alive for the interleaved mode (``--serve`` child)."""

    def __init__(self, python, side, args, log_dir):
        cmd = [python, os.path.abspath(__file__), "--child", side, "--serve"] + _forward_args(args)
        self.side, self.cmd, self.peak_rss_mb = side, cmd, None
        # stderr to a file: a full pipe of framework warnings would block the child
        self.log = open(os.path.join(log_dir, side + ".log"), "w+")
        env = _thread_env(args.threads, _pinned(side, args))
        # Intel OpenMP (Paddle's, and MKL's in the authors' Paddle code) spins 200 ms after each
        # parallel region by default: capped at half the gap between calls, so one side's idle
        # threads never take a core from the other side's next call. GNU OpenMP (PyTorch's)
        # ignores it and spins for well under a millisecond.
        env.setdefault("KMP_BLOCKTIME", str(max(1, min(200, int(args.gap_ms) // 2))))
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        try:
            self.ready = self._reply()
        except SystemExit:
            self.close()
            raise

    def _reply(self):
        for line in self.proc.stdout:  # frameworks may print other lines to stdout
            if line.startswith("{"):
                return json.loads(line)
        self.log.seek(0)
        raise SystemExit(f"{self.side} run failed ({' '.join(self.cmd)}):\n{self.log.read()[-3000:]}")

    def call(self):
        """Wall and CPU milliseconds of one call."""
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        reply = self._reply()
        return reply["ms"], reply.get("cpu_ms", float("nan"))

    def close(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            for line in self.proc.stdout:
                if line.startswith("{") and "peak_rss_mb" in line:
                    self.peak_rss_mb = json.loads(line)["peak_rss_mb"]
            self.proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def interleaved(args):
    """Both sides alive at once, one call each in turn (ABBA order), ``gap_ms`` apart: machine
    drift hits both sides within the same second, not one round each. Returns per-call wall and
    CPU times and each side's peak memory."""
    times = {"authors": [], "ours": []}
    cpu = {"authors": [], "ours": []}
    with tempfile.TemporaryDirectory() as log_dir:
        servers = {}
        try:
            servers["authors"] = _Server(args.authors_python, "authors", args, log_dir)
            servers["ours"] = _Server(sys.executable, "ours", args, log_dir)
            for i in range(args.interleave):
                for side in (("authors", "ours") if i % 2 == 0 else ("ours", "authors")):
                    time.sleep(args.gap_ms / 1e3)
                    wall, cpu_ms = servers[side].call()
                    times[side].append(wall)
                    cpu[side].append(cpu_ms)
                if (i + 1) % 10 == 0 or i + 1 == args.interleave:
                    print(f"pair {i + 1}/{args.interleave}: authors {times['authors'][-1]:.1f} ms, "
                          f"ours {times['ours'][-1]:.1f} ms", flush=True)
        finally:
            for server in servers.values():
                server.close()
    return times, cpu, {side: server.peak_rss_mb for side, server in servers.items()}


def _forward_args(args):
    out = ["--model", args.model, "--model-dir", args.model_dir, "--threads", str(args.threads),
           "--image-size", str(args.image_size), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
           "--authors-path", args.authors_path, "--authors-build", args.authors_build,
           "--authors-kwargs", args.authors_kwargs, "--authors-framework", args.authors_framework,
           "--authors-runtime", args.authors_runtime, "--mode", args.mode, "--batch", str(args.batch),
           "--ours", args.ours, "--ours-kwargs", args.ours_kwargs]
    return out + (["--no-onednn"] if args.no_onednn else []) + (["--free-intermediates"] if args.free_intermediates else [])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="our registered model name")
    parser.add_argument("--ours-kwargs", default="{}", help="JSON keyword arguments of our model")
    parser.add_argument("--ours", choices=("predictor", "dygraph", "onnxruntime"), default="predictor",
                        help="our backend for inference (training steps are always dygraph)")
    parser.add_argument("--authors-python", default=sys.executable)
    parser.add_argument("--authors-path", default="", help=f"'{os.pathsep}'-separated import paths of the authors' code")
    parser.add_argument("--authors-build", default="", help="module:callable building the authors' model")
    parser.add_argument("--authors-kwargs", default="{}", help="JSON keyword arguments of that callable")
    parser.add_argument("--authors-framework", choices=("torch", "paddle"), default="torch")
    parser.add_argument("--authors-runtime", choices=("eager", "trace", "onnxruntime"), default="eager",
                        help="PyTorch authors' code: eager, torch.jit.trace + freeze + optimize_for_inference, "
                             "or torch.onnx.export run in ONNX Runtime")
    parser.add_argument("--trace", dest="authors_runtime", action="store_const", const="trace",
                        help="= --authors-runtime trace")
    parser.add_argument("--mode", choices=("infer", "train"), default="infer",
                        help="train: one forward, backward and AdamW step per call, both sides eager")
    parser.add_argument("--batch", type=int, default=None, help="images per call (default 1; 8 in train mode)")
    parser.add_argument("--model-dir", default=None,
                        help="our export (reused when already there; default: a temp dir)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", default="224",
                        help="side of a square input, or HxW (800x1333: the dense pyramid with "
                             "--ours-kwargs '{\"features_only\": true}' and the authors' dense form)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole measurement; report each and the median")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=6, help="timed calls per process and round")
    parser.add_argument("--no-onednn", action="store_true", help="time our predictor without oneDNN")
    parser.add_argument("--free-intermediates", action="store_true",
                        help="free our predictor's intermediate tensors after their last use, Paddle's default "
                             "(by default they stay allocated between calls, Global.keep_intermediates of "
                             "deploy/configs/inference_cls.yaml)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin our predictor's threads (KMP_AFFINITY, as predict_cls.py does by default)")
    parser.add_argument("--interleave", type=int, default=0, metavar="N",
                        help="instead of rounds: keep both processes alive and alternate single calls, "
                             "N per side (ABBA order); reports the median of the per-pair ratios too")
    parser.add_argument("--gap-ms", type=float, default=50.0,
                        help="pause before each interleaved call (Intel OpenMP's spin after a call is "
                             "capped at half of it)")
    parser.add_argument("--max-ratio", type=float, default=None, metavar="R",
                        help=f"exit with status 1 when the median over runs of the ratio of medians (ours / "
                             f"authors') exceeds R; needs --runs {MIN_RUNS_FOR_GOAL} or more")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--child", choices=("authors", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if image_hw(args.image_size) is None:
        parser.error(f"--image-size {args.image_size}: give one side (224) or HxW (800x1333)")
    if args.batch is None:
        args.batch = 8 if args.mode == "train" else 1
    return args


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def check_goal(ratio, max_ratio):
    """SystemExit (status 1) when ``ratio`` exceeds ``max_ratio`` (None: no goal)."""
    if max_ratio is not None and ratio > max_ratio:
        print(f"goal missed: ratio {ratio:.2f} > {max_ratio:.2f}", file=sys.stderr)
        raise SystemExit(1)


def _check_options(args):
    if not args.authors_build:
        raise SystemExit("--authors-build module:callable is required (see the module docstring)")
    if args.max_ratio is not None and args.runs < MIN_RUNS_FOR_GOAL:
        raise SystemExit(f"--max-ratio judges the median of at least {MIN_RUNS_FOR_GOAL} runs: add "
                         f"--runs {MIN_RUNS_FOR_GOAL} (got --runs {args.runs})")
    if args.mode == "train" and args.ours == "onnxruntime":
        raise SystemExit("--mode train runs our model in dygraph; --ours onnxruntime is for inference")
    if args.authors_runtime != "eager" and (args.mode == "train" or args.authors_framework != "torch"):
        raise SystemExit(f"--authors-runtime {args.authors_runtime} applies to PyTorch inference only")
    if args.mode == "train":
        args.ours = "dygraph"


def _backend(args):
    if args.mode == "train":
        return "dygraph training step (AdamW)"
    if args.ours == "dygraph":
        return "dygraph"
    if args.ours == "onnxruntime":
        return "ONNX Runtime"
    return ("Paddle Inference" + ("" if args.no_onednn else " + oneDNN") + ("" if args.no_pin else ", pinned")
            + (", intermediates freed" if args.free_intermediates else ", intermediates kept"))


def _authors_label(args):
    runtime = {"eager": "", "trace": ", jit.trace", "onnxruntime": ", ONNX Runtime"}[args.authors_runtime]
    return f"{args.authors_framework}{runtime} ({args.authors_build})"


def _summary(authors, ours, authors_best, ours_best, **extra):
    return dict(authors_ms=authors, ours_ms=ours, ratio=ours / authors, authors_best_ms=authors_best,
                ours_best_ms=ours_best, best_ratio=ours_best / authors_best, **extra)


def _print_row(args, result, mode=""):
    per_image = f" ({result['authors_ms'] / args.batch:.1f} / {result['ours_ms'] / args.batch:.1f} ms/img)" \
        if args.batch > 1 else ""
    print(f"| {args.model} | {_authors_label(args)} | {result['authors_ms']:.1f} | {_backend(args)}{mode} | "
          f"{result['ours_ms']:.1f} | {result['ratio']:.2f} | {args.threads} | b{args.batch}{per_image} |")
    print(f"best calls: authors {result['authors_best_ms']:.1f} ms, ours {result['ours_best_ms']:.1f} ms, "
          f"ratio {result['best_ratio']:.2f}")
    cpu = result.get("cpu_ms") or {}
    if cpu.get("authors") and cpu.get("ours"):
        print(f"CPU time per call (all threads): authors {cpu['authors']:.1f} ms, ours {cpu['ours']:.1f} ms, "
              f"ratio {cpu['ours'] / cpu['authors']:.2f}")
    memory = result.get("peak_rss_mb") or {}
    if memory.get("authors") and memory.get("ours"):
        print(f"peak resident memory: authors {memory['authors']:.0f} MB, ours {memory['ours']:.0f} MB")


def _one_run(args):
    """One measurement (rounds or interleaved): the figures of both sides and their ratios."""
    if args.interleave:
        times, cpu, memory = interleaved(args)
        # each pair ran within about a second, so its ratio carries little of the machine's drift
        pair_ratio = _median([o / a for o, a in zip(times["ours"], times["authors"])])
        print(f"interleaved, {args.interleave} calls per side: median of per-pair ratios {pair_ratio:.2f}")
        return _summary(_median(times["authors"]), _median(times["ours"]), min(times["authors"]),
                        min(times["ours"]), pair_ratio=pair_ratio, calls=times, peak_rss_mb=memory,
                        cpu_ms={side: _median(values) for side, values in cpu.items()})
    results = {"authors": [], "ours": []}
    best = {"authors": [], "ours": []}
    cpu = {"authors": [], "ours": []}
    memory = {"authors": 0.0, "ours": 0.0}
    for r in range(args.rounds):
        for side, python in (("authors", args.authors_python), ("ours", sys.executable)):
            res = _run_child(python, side, args)
            results[side].append(res["median_ms"])
            best[side].append(res["min_ms"])
            cpu[side].append(res.get("cpu_ms", float("nan")))
            memory[side] = max(memory[side], res.get("peak_rss_mb", 0.0))
        print(f"round {r + 1}/{args.rounds}: authors {results['authors'][-1]:.1f} ms (CPU {cpu['authors'][-1]:.1f}), "
              f"ours {results['ours'][-1]:.1f} ms (CPU {cpu['ours'][-1]:.1f})", flush=True)
    # Best case: each side's fastest call over all rounds. Interference from other virtual
    # machines only adds time, so on a shared host this ratio drifts less than the medians'.
    return _summary(_median(results["authors"]), _median(results["ours"]), min(best["authors"]),
                    min(best["ours"]), rounds=results, peak_rss_mb=memory,
                    cpu_ms={side: _median(values) for side, values in cpu.items()})


def main(argv=None):
    args = parse_args(argv)
    if args.child == "authors":
        return child_authors(args)
    if args.child == "ours":
        return child_ours(args)
    _check_options(args)
    with tempfile.TemporaryDirectory() as tmp:
        args.model_dir = args.model_dir or os.path.join(tmp, args.model)
        os.makedirs(args.model_dir, exist_ok=True)
        prepare_ours(args)
        runs = []
        for run in range(args.runs):
            if args.runs > 1:
                print(f"run {run + 1}/{args.runs}", flush=True)
            runs.append(_one_run(args))
            if args.runs > 1:
                print(f"run {run + 1}/{args.runs}: ratio of medians {runs[-1]['ratio']:.2f}", flush=True)
    mode = ", interleaved" if args.interleave else ""
    if args.runs == 1:
        result = dict(runs[0])
    else:
        ratios = [r["ratio"] for r in runs]
        result = _summary(_median([r["authors_ms"] for r in runs]), _median([r["ours_ms"] for r in runs]),
                          min(r["authors_best_ms"] for r in runs), min(r["ours_best_ms"] for r in runs),
                          peak_rss_mb={side: max(r["peak_rss_mb"][side] or 0.0 for r in runs)
                                       for side in ("authors", "ours")},
                          cpu_ms={side: _median([r.get("cpu_ms", {}).get(side, float("nan")) for r in runs])
                                  for side in ("authors", "ours")})
        result["ratio"] = _median(ratios)  # the goal is judged on the median run, not a ratio of medians of medians
        print(f"{args.runs} runs, ratios of medians: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"median {result['ratio']:.2f}")
    result.update(runs=runs, model=args.model, authors=_authors_label(args), ours_backend=_backend(args),
                  mode=args.mode, batch=args.batch, threads=args.threads, image_size=args.image_size)
    _print_row(args, result, mode)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    check_goal(result["ratio"], args.max_ratio)
    return result


if __name__ == "__main__":
    main()
