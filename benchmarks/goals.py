"""Issue 25's goals, each measured by one command on the machine it runs on: the project's
benchmark tools run back to back, their figures gathered into one table per goal with ours, the
anchor, the ratio, the goal and the machine (docs/benchmarks.md, "Issue 25 goals, one sitting").

    bash benchmarks/get_authors_code.sh /tmp/authors         # the authors' code, once
    python benchmarks/goals.py --goal 3 --authors /tmp/authors --torch-python /venv-torch/bin/python
    python benchmarks/goals.py --goal all ...                # every goal (about an hour on 2 cores)
    python benchmarks/goals.py --goal all --render-only      # the tables again from --out

``--torch-python`` is an interpreter with torch, onnx and onnxruntime for the authors' PyTorch
code (the official MixFormer is Paddle code and runs in this interpreter).

What each goal runs (every step is a subprocess of a tool in benchmarks/ or tools/, writing
``--out/<step>.json``; a step whose file is already there is reused, so goals that share an
anchor measure it once and an interrupted sitting resumes; ``--fresh`` measures everything again):

- goal 0, every backend: ``tools/benchmark.py`` (dygraph before and after ``re_parameterize()``,
  Paddle Inference with oneDNN on and off, ONNX Runtime; batch 1 and 8) beside the authors'
  eager figures at batch 1 and 8.
- goal 1, batch 1: ``vs_authors.py --interleave`` of our best backend (Paddle Inference +
  oneDNN) against the authors' eager code, ``torch.jit.trace`` + freeze and ``torch.onnx.export``
  in ONNX Runtime, at 1 and 2 threads, three runs each (every run and the median reported).
- goal 2, batch 8: ``per_gmac.py`` over every family's smallest and mid variant (GFLOP/s by CPU
  time against the fp32 GEMM peak measured in the same sitting, also by CPU time) and
  ``vs_authors.py --batch 8`` against the authors' eager code.
- goal 3, training: ``vs_authors.py --mode train`` (forward, backward, AdamW, batch 8, peak
  memory), the training data pipeline alone (a PaddleClas config's ``DataLoader.Train`` on
  generated JPEGs, in the main process) and ``profile_ops.py`` of our step.
- goal 4, dense: ``dense_profile.py --saved-graph`` (800x1333 against 224, eager and saved
  graph, share of the GEMM peak, which ops grow faster than the MACs) and
  ``vs_authors.py --image-size 800x1333`` of TransXNet-T's pyramid against the authors'
  ``fork_feat`` model.
- goal 5: ms per GMAC of every family's smallest variant, from goal 2's ``per_gmac.py`` run.

Timing tools report the wall time and the CPU time of the process; the tables say which one a
figure is. Not a timed test: the numbers depend on the machine; a missed goal is reported, the
command still exits 0.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

FOCAL_T = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "focal_levels": [2, 2, 2, 2],
           "focal_windows": [7, 5, 3, 1], "expand_sizes": [3, 3, 3, 3]}
#: our model -> the authors' release it is measured against (paths relative to --authors)
AUTHORS = {
    "TransXNet_T": dict(framework="torch", path="TransXNet/models", build="transxnet:transxnet_t", kwargs={},
                        train_kwargs={"drop_path_rate": 0.1}, dense_kwargs={"fork_feat": True}),
    "FocalTransformer_T": dict(framework="torch", path="Focal-Transformer/classification",
                               build="focal_transformer:FocalTransformer", kwargs=FOCAL_T, train_kwargs=FOCAL_T),
    "MixFormer_B4": dict(framework="paddle", path="mixformer",
                         build="ppcls.arch.backbone.model_zoo.mixformer:MixFormer_B4", kwargs={}, train_kwargs={}),
}
TORCH_MODELS = [m for m, a in AUTHORS.items() if a["framework"] == "torch"]
SMALLEST = ["TransXNet_T", "FocalTransformer_T", "MixFormer_B0", "MAFormer_S", "DualFormer_T"]
MID = ["TransXNet_S", "FocalTransformer_S", "MixFormer_B3", "MAFormer_B", "DualFormer_S"]
NO_AUTHORS_CODE = ["MAFormer_S", "DualFormer_T"]
BACKEND_MODELS = ["TransXNet_T", "FocalTransformer_T", "MixFormer_B4", "MAFormer_S", "DualFormer_T"]
BACKENDS = ["dygraph", "dygraph_reparam", "paddle_onednn", "paddle_native", "onnxruntime"]
DENSE_SIZE = "800x1333"


class Sitting:
    """Runs the steps of a goal (each once per ``--out``) and loads their figures."""

    def __init__(self, args):
        self.args = args
        os.makedirs(args.out, exist_ok=True)

    def path(self, step):
        return os.path.join(self.args.out, step + ".json")

    def load(self, step):
        path = self.path(step)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def run(self, step, argv, python=None, env=None):
        """``python argv... --json <out>/<step>.json`` unless that file is there already; ``env``:
        variables added to this process's environment."""
        path = self.path(step)
        if os.path.exists(path) and not self.args.fresh:
            return self.load(step)
        if self.args.render_only:
            return None
        partial = path + ".partial"
        command = [python or sys.executable] + argv + ["--json", partial]
        print(f"[{datetime.datetime.now():%H:%M:%S}] {step}: {' '.join(command)}", flush=True)
        log_path = os.path.join(self.args.out, step + ".log")
        started = time.perf_counter()
        with open(log_path, "w") as log:
            code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, **(env or {})))
        print(f"    {time.perf_counter() - started:.0f} s, exit {code}, log {log_path}", flush=True)
        if code != 0 or not os.path.exists(partial):
            with open(log_path) as log:
                tail = log.read().strip().splitlines()[-3:]
            print(f"    {step} FAILED: " + " / ".join(tail), flush=True)
            return None
        os.replace(partial, path)  # a step's file is complete or absent, never half-written
        return self.load(step)

    # -- the tools ---------------------------------------------------------------------------
    def vs_authors(self, model, threads, batch=1, runtime="eager", ours="predictor", mode="infer",
                   image_size="224", interleave=0, runs=1, rounds=3, repeats=3):
        spec = AUTHORS[model]
        if image_size != "224":
            kwargs = spec["dense_kwargs"]
        else:
            kwargs = spec["train_kwargs"] if mode == "train" else spec["kwargs"]
        ours = "dygraph" if mode == "train" else ours
        step = f"vs_authors_{model}_{mode}_{ours}_{runtime}_b{batch}_{threads}t_{image_size}"
        python = self.args.torch_python if spec["framework"] == "torch" else sys.executable
        argv = [os.path.join(HERE, "vs_authors.py"), "--model", model, "--authors-python", python,
                "--authors-framework", spec["framework"], "--authors-build", spec["build"],
                "--authors-path", os.path.join(self.args.authors, spec["path"]),
                "--authors-kwargs", json.dumps(kwargs), "--authors-runtime", runtime,
                "--threads", str(threads), "--batch", str(batch), "--mode", mode, "--image-size", image_size,
                "--runs", str(min(runs, self.args.quick_runs or runs)),
                "--model-dir", os.path.join(self.args.out, "exports", f"{model}_{image_size}")]
        if mode == "infer":
            argv += ["--ours", ours]
        if image_size != "224":
            argv += ["--ours-kwargs", json.dumps({"features_only": True})]
        if interleave:
            argv += ["--interleave", str(min(interleave, self.args.quick_runs * 3 or interleave)), "--warmup", "3"]
        else:
            argv += ["--rounds", str(min(rounds, self.args.quick_runs or rounds)), "--warmup", "1",
                     "--repeats", str(repeats)]
        return self.run(step, argv)

    def backends(self):
        return self.run("backends", [os.path.join(ROOT, "tools", "benchmark.py"), "--models"] + BACKEND_MODELS
                        + ["--backends", ",".join(BACKENDS), "--threads", "2", "--batch", "8", "--warmup", "2",
                           "--repeats", "10", "--repeats_batch", "3"])

    def per_gmac(self):
        return self.run("per_gmac", [os.path.join(HERE, "per_gmac.py"), "--models"] + SMALLEST + MID
                        + ["--threads", "2", "--batch", "8", "--rounds", "1", "--repeats", "3"])

    def gemm_peak(self):
        return self.run("gemm_peak", [os.path.join(HERE, "goals.py"), "--child", "gemm_peak", "--threads", "2"])

    def loader(self, model):
        return self.run(f"loader_{model}", [os.path.join(HERE, "goals.py"), "--child", "loader", "--model", model])

    def profile(self, model, mode, threads=2, batch=None, framework="paddle", standard_ops=False):
        """``profile_ops.py``: our step (``standard_ops``: with the fast kernels off, the kernels a
        saved graph runs without oneDNN) or, with ``framework="torch"``, the authors'."""
        batch = batch or (8 if mode == "train" else 1)
        step = f"profile_{framework}_{model}_{mode}_b{batch}" + ("_standard_ops" if standard_ops else "")
        argv = [os.path.join(HERE, "profile_ops.py"), "--model", model, "--mode", mode, "--batch", str(batch),
                "--threads", str(threads), "--warmup", "1", "--steps", "2" if mode == "train" else "5", "--top", "12"]
        if framework == "torch":
            spec = AUTHORS[model]
            argv += ["--framework", "torch", "--authors-path", os.path.join(self.args.authors, spec["path"]),
                     "--authors-build", spec["build"],
                     "--authors-kwargs", json.dumps(spec["train_kwargs"] if mode == "train" else spec["kwargs"])]
        return self.run(step, argv, python=self.args.torch_python if framework == "torch" else None,
                        env={"PPVH_FAST_OPS": "0"} if standard_ops else None)

    def onnx_profile(self, model):
        return self.run(f"onnx_profile_{model}", [os.path.join(HERE, "goals.py"), "--child", "onnx_profile",
                                                  "--model", model, "--out", self.args.out, "--threads", "2"])

    def saved_graph_profile(self, model, batch):
        return self.run(f"saved_graph_profile_{model}_b{batch}",
                        [os.path.join(HERE, "goals.py"), "--child", "saved_graph_profile", "--model", model,
                         "--batch", str(batch), "--threads", "2"])

    def dense(self):
        return self.run("dense", [os.path.join(HERE, "dense_profile.py"), "--threads", "2", "--steps", "2",
                                  "--top", "6", "--saved-graph", "--height", DENSE_SIZE.split("x")[0],
                                  "--width", DENSE_SIZE.split("x")[1], "--models"] + SMALLEST)


# -- children (run as subprocesses so that each measures a fresh process) ---------------------
def child_gemm_peak(args, size=2048, repeats=5):
    """The machine's fp32 GEMM peak at ``--threads``: GFLOP/s of a 2048^2 product by wall time
    (the machine's rate; the goals' figure) and by CPU time of the process (per busy core), the
    better of ``paddle.matmul`` and numpy (``dense_profile.gemm_rates``)."""
    for key in ("OMP_NUM_THREADS", "FLAGS_paddle_num_threads", "MKL_NUM_THREADS"):
        os.environ.setdefault(key, str(args.threads))
    sys.path.insert(0, HERE)
    from dense_profile import gemm_rates
    figures = gemm_rates(size, repeats)
    peak = {kind: max(f[kind] for f in figures.values()) for kind in ("wall", "cpu")}
    print(f"fp32 GEMM peak ({size}^2, {args.threads} threads): {peak['wall']:.1f} GFLOP/s by wall time, "
          f"{peak['cpu']:.1f} by CPU time {figures}")
    return dict(peak_gflops=peak["wall"], peak_gflops_cpu=peak["cpu"], figures=figures, threads=args.threads)


def child_loader(args, images=64, batch=8, batches=8):
    """Images/s of ``configs/<model>.yaml``'s ``DataLoader.Train`` (its transforms and batch ops)
    on generated 500x375 JPEGs, read in the main process (``num_workers`` 0: the slowest case)."""
    import tempfile
    import numpy as np
    import yaml
    from PIL import Image
    sys.path.insert(0, ROOT)
    from ppvision_hybrid.data import build_dataloader
    with open(os.path.join(ROOT, "configs", f"{args.model}.yaml")) as f:
        config = yaml.safe_load(f)
    train = config["DataLoader"]["Train"]
    rng = np.random.RandomState(0)
    with tempfile.TemporaryDirectory(prefix="ppvh_loader_") as tmp:
        with open(os.path.join(tmp, "train_list.txt"), "w") as listing:
            for i in range(images):
                Image.fromarray(rng.randint(0, 255, (375, 500, 3), np.uint8)).save(os.path.join(tmp, f"{i}.jpg"),
                                                                                quality=90)
                listing.write(f"{i}.jpg {i % 10}\n")
        train["dataset"].update(image_root=tmp, cls_label_path=os.path.join(tmp, "train_list.txt"))
        train["sampler"].update(batch_size=batch)
        train["loader"] = dict(num_workers=0, use_shared_memory=False)
        loader, _, _ = build_dataloader(train, class_num=config["Arch"].get("class_num", 1000), shuffle_default=True)
        iterator = iter(loader)
        next(iterator)  # warm-up
        started = time.perf_counter()
        for _ in range(batches - 1):
            next(iterator)
        seconds = time.perf_counter() - started
    rate = (batches - 1) * batch / seconds
    print(f"{args.model} DataLoader.Train, main process: {rate:.1f} images/s")
    return dict(images_per_s=rate, batch=batch, batches=batches - 1, workers=0)


def child_onnx_profile(args):
    """ONNX Runtime's time per op type for our model (exported and converted as ``tools/benchmark.py``
    does) and, when goal 1 left it in the export folder, the authors' ``torch.onnx.export`` file:
    batch 1, ``--threads``, 20 profiled calls after 3 warm-up calls."""
    import collections
    import glob
    import tempfile
    import numpy as np
    import onnxruntime as ort
    sys.path.insert(0, ROOT)
    import paddle
    import ppvision_hybrid
    from ppvision_hybrid.export import export_inference_model
    from ppvision_hybrid.onnx import convert_and_verify
    x = np.random.RandomState(0).standard_normal((1, 3, 224, 224)).astype("float32")
    result = {}
    with tempfile.TemporaryDirectory(prefix="ppvh_onnx_profile_") as tmp:
        paddle.seed(0)
        model = ppvision_hybrid.create_model(args.model)
        model.eval()
        export_inference_model(model, os.path.join(tmp, "paddle"), image_shape=(3, 224, 224))
        ours = os.path.join(tmp, "model.onnx")
        convert_and_verify(os.path.join(tmp, "paddle"), ours, shapes=[(1, 3, 224, 224)], threads=args.threads,
                           log=lambda *a: None)
        files = {"ours": ours}
        authors = glob.glob(os.path.join(args.out, "exports", f"{args.model}_224", "authors_*_b1_224.onnx"))
        if authors:
            files["authors"] = authors[0]
        for side, path in files.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
            options.enable_profiling, options.log_severity_level = True, 3
            options.profile_file_prefix = os.path.join(tmp, side)
            session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: x}
            for _ in range(3):
                session.run(None, feed)
            calls = 20
            started = time.perf_counter()
            for _ in range(calls):
                session.run(None, feed)
            wall_ms = (time.perf_counter() - started) * 1e3 / calls
            with open(session.end_profiling()) as f:
                events = json.load(f)
            per_op = collections.defaultdict(lambda: [0, 0.0])
            for event in events:
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    per_op[event["args"]["op_name"]][0] += 1
                    per_op[event["args"]["op_name"]][1] += event["dur"] / 1e3
            runs = calls + 3
            ops = [[name, n / runs, ms / runs] for name, (n, ms) in per_op.items()]
            result[side] = dict(wall_ms=[wall_ms], ops=ops, nodes=len(set(e["name"] for e in events
                                                                         if e.get("cat") == "Node")))
            print(f"{args.model} {side}: {wall_ms:.1f} ms per call (profiling on)")
    return result


def parse_paddle_profile(text):
    """``[(event, calls, total ms)]`` of the first "Event Summary" in Paddle Inference's profiling
    report (the one that merges all threads), top-level events only (not their indented parts)."""
    events, table = [], False
    for line in text.splitlines():
        if not table:
            table = line.startswith("Event ") and "Calls" in line and "Total" in line
            continue
        if not line.strip():
            if events:
                break
            continue
        if line[0].isspace():
            continue
        fields = line.split()
        try:
            events.append((fields[0], int(fields[1]), float(fields[2])))
        except (IndexError, ValueError):
            break
    return events


def child_saved_graph_profile(args, warmup=1, calls=4):
    """Paddle Inference's own profile (``Config.enable_profile``) of our exported model with oneDNN,
    intermediates kept (as ``tools/benchmark.py``): time per op type per call at ``--batch``."""
    import gc
    import tempfile
    import numpy as np
    sys.path.insert(0, ROOT)
    import paddle
    import ppvision_hybrid
    from ppvision_hybrid.export import export_inference_model
    from ppvision_hybrid.inference import Predictor, _capture_native_output, create_config
    x = np.random.RandomState(0).standard_normal((args.batch, 3, 224, 224)).astype("float32")
    with tempfile.TemporaryDirectory(prefix="ppvh_saved_profile_") as tmp:
        paddle.seed(0)
        model = ppvision_hybrid.create_model(args.model)
        model.eval()
        export_inference_model(model, os.path.join(tmp, "m"), image_shape=(3, 224, 224))
        config = create_config(os.path.join(tmp, "m"), enable_mkldnn=True, cpu_threads=args.threads)
        config.enable_profile()
        cwd = os.getcwd()
        os.chdir(tmp)  # Paddle also writes its raw profile, ``profile.log``, to the working folder
        try:
            with _capture_native_output() as report:
                predictor = Predictor(config, keep_intermediates=True)
                for _ in range(warmup):
                    predictor(x)
                wall = []
                for _ in range(calls):
                    started = time.perf_counter()
                    predictor(x)
                    wall.append((time.perf_counter() - started) * 1e3)
                del predictor  # the report is printed when the predictor goes
                gc.collect()
        finally:
            os.chdir(cwd)
    events = parse_paddle_profile(report["text"])
    if not events:
        raise SystemExit(f"no profiling report in Paddle's output: {report['text'][-500:]}")
    runs = warmup + calls
    ops = [[name, n / runs, ms / runs] for name, n, ms in events]
    print(f"{args.model} b{args.batch}: {statistics.median(wall):.1f} ms per call (profiling on), "
          f"{sum(op[2] for op in ops):.1f} ms op time")
    return dict(wall_ms=wall, ops=ops, batch=args.batch)


# -- tables -----------------------------------------------------------------------------------
def _fmt(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _met(ratio, goal, lower_is_better=True):
    if ratio is None:
        return "n/a"
    return "met" if (ratio <= goal if lower_is_better else ratio >= goal) else "**missed**"


def _runs(result):
    return ", ".join(f"{r['ratio']:.2f}" for r in result.get("runs", [result])) if result else "n/a"


def machine_line():
    model = platform.processor() or "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = "AVX-512" if "avx512f" in info else ("AVX2" if "avx2" in info else "no AVX2")
    except (OSError, StopIteration):
        pass
    try:
        import importlib.metadata as md
        paddle_version = md.version("paddlepaddle")
    except Exception:
        paddle_version = "?"
    return (f"{model} ({flags}), {os.cpu_count()} cores, Paddle {paddle_version}, load average "
            f"{os.getloadavg()[0]:.2f} at {datetime.datetime.now():%Y-%m-%d %H:%M} UTC")


def sitting_machine_line(args):
    """The machine line of the sitting that measured ``--out``: written when its first step runs,
    read back by ``--render-only`` (whose own load and time would say nothing of the sitting)."""
    path = os.path.join(args.out, "machine.txt")
    if os.path.exists(path) and not args.fresh:
        with open(path) as f:
            return f.read().strip()
    line = machine_line()
    if not args.render_only:
        with open(path, "w") as f:
            f.write(line + "\n")
    return line


def goal0(s):
    rows = s.backends()
    anchors = {m: (s.vs_authors(m, 2, interleave=20, runs=3), s.vs_authors(m, 2, batch=8, repeats=3))
               for m in AUTHORS}
    lines = ["| model | backend | b1 ms | authors' eager b1 ms | ratio (goal <= 1) | b8 ms/img | authors' eager "
             "b8 ms/img | ratio (goal <= 1) |", "|---|---|---|---|---|---|---|---|"]
    for row in (rows or {}).get("rows", []):
        b1_anchor, b8_anchor = anchors.get(row["model"], (None, None))
        a1 = b1_anchor["authors_ms"] if b1_anchor else None
        a8 = b8_anchor["authors_ms"] / 8 if b8_anchor else None
        for backend in BACKENDS:
            latency, throughput = row.get(backend) or (None, None)
            per_image = 1e3 / throughput if throughput else None
            r1 = latency / a1 if latency and a1 else None
            r8 = per_image / a8 if per_image and a8 else None
            lines.append(f"| {row['model']} | {backend} | {_fmt(latency)} | {_fmt(a1)} | {_fmt(r1, 2)} "
                         f"{_met(r1, 1.0) if a1 else ''} | {_fmt(per_image)} | {_fmt(a8)} | {_fmt(r8, 2)} "
                         f"{_met(r8, 1.0) if a8 else ''} |")
    for model in TORCH_MODELS:  # where the backends that miss the goal spend their time
        lines += _profile_lines(s.profile(model, "infer"), f"{model}, our eager call (batch 1, 2 threads)")
        lines += _profile_lines(s.profile(model, "infer", framework="torch"),
                                f"{model}, the authors' eager call (batch 1, 2 threads)")
        lines += _profile_lines(s.profile(model, "infer", standard_ops=True),
                                f"{model}, our eager call on Paddle's standard kernels (`PPVH_FAST_OPS=0`: the "
                                f"kernels a saved graph runs with oneDNN off; batch 1, 2 threads)")
        # goal 1's run against the authors' ONNX file leaves that file for the profile of both files
        s.vs_authors(model, 2, runtime="onnxruntime", ours=best_backend(s, model), interleave=20, runs=3)
        onnx = s.onnx_profile(model) or {}
        for side in ("ours", "authors"):
            if side in onnx:
                lines += _profile_lines(onnx[side], f"{model}, {'our' if side == 'ours' else 'the authors'} "
                                        f"ONNX file in ONNX Runtime ({onnx[side]['nodes']} nodes; batch 1, 2 "
                                        f"threads, profiling on)")
    note = ("Ours: `tools/benchmark.py` (2 threads, wall, median of 10 calls at b1 and 3 at b8). Authors' eager: "
            "`vs_authors.py` in the same sitting (b1: 3 interleaved runs of 20 pairs, median; b8: 3 rounds). "
            "MixFormer-B4's anchor is the official Paddle code in dygraph. MAFormer and DualFormer have no "
            "authors' code (goal 5).")
    return "Goal 0: every backend against the authors' eager code (2 threads)", note, lines


def best_backend(s, model):
    """Our fastest inference backend for ``model`` at batch 1 in goal 0's run (vs_authors.py's name)."""
    row = next((r for r in (s.backends() or {}).get("rows", []) if r["model"] == model), None)
    timed = {b: (row.get(b) or [None])[0] for b in ("paddle_onednn", "onnxruntime")} if row else {}
    timed = {b: ms for b, ms in timed.items() if ms}
    if not timed:
        return "predictor"
    return {"paddle_onednn": "predictor", "onnxruntime": "onnxruntime"}[min(timed, key=timed.get)]


def goal1(s):
    lines = ["| model | threads | anchor | anchor ms | ours: best backend | ours ms | ratio, median of runs (runs) "
             "| goal | |", "|---|---|---|---|---|---|---|---|---|"]
    for model in AUTHORS:
        runtimes = [("eager", 0.5), ("trace", 0.6), ("onnxruntime", 0.6)] if model in TORCH_MODELS else [("eager", 0.4)]
        ours = best_backend(s, model)
        for threads in (1, 2):
            for runtime, goal in runtimes:
                r = s.vs_authors(model, threads, runtime=runtime, ours=ours, interleave=20, runs=3)
                label = {"eager": "authors' eager", "trace": "authors' jit.trace + freeze",
                         "onnxruntime": "authors' torch.onnx.export in ONNX Runtime"}[runtime]
                if model == "MixFormer_B4":
                    label = "official Paddle dygraph"
                lines.append(f"| {model} | {threads} | {label} | {_fmt(r and r['authors_ms'])} | "
                             f"{'Paddle Inference + oneDNN' if ours == 'predictor' else 'ONNX Runtime'} | "
                             f"{_fmt(r and r['ours_ms'])} | {_fmt(r and r['ratio'], 2)} ({_runs(r)}) | <= {goal} | "
                             f"{_met(r and r['ratio'], goal)} |")
    note = ("Our best backend is the faster of Paddle Inference + oneDNN and ONNX Runtime at batch 1 in goal 0's "
            "run. `vs_authors.py --interleave 20 --runs 3`: both processes alive, single calls in turn (ABBA), "
            "wall time; the ratio is the median over the three runs of each run's ratio of medians. Where a miss "
            "spends its time: goal 0's profiles (ONNX Runtime per op type for our file and the authors', both "
            "eager calls) and goal 5's Paddle Inference profiles.")
    return "Goal 1: batch 1, our best backend against what a PyTorch user deploys", note, lines


def goal2(s):
    peak = (s.gemm_peak() or {}).get("peak_gflops")
    gmac = s.per_gmac()
    lines = [f"| model | GMACs | Paddle Inference + oneDNN b8, ms/img | GFLOP/s | share of the GEMM peak "
             f"({_fmt(peak)} GFLOP/s) | goal >= 60% | authors' eager b8 ms/img | ours ms/img, same run | "
             f"ratio (goal <= 0.6) |", "|---|---|---|---|---|---|---|---|---|"]
    for model in SMALLEST + MID + ["MixFormer_B4"]:
        rounds = (gmac or {}).get("runs", {}).get(model)
        ms = gflops = share = None
        gmacs = None
        if rounds:
            gmacs = rounds[0]["macs"] / 1e9
            ms = statistics.median(r["onednn bN"][1] for r in rounds) / 8  # wall time
            gflops = 2 * gmacs / ms * 1e3
            share = gflops / peak if peak else None
        anchor = s.vs_authors(model, 2, batch=8, repeats=3) if model in AUTHORS else None
        if ms is None and anchor is None:
            continue
        ratio = anchor["ratio"] if anchor else None
        lines.append(f"| {model} | {_fmt(gmacs, 2)} | {_fmt(ms)} | {_fmt(gflops)} | "
                     f"{_fmt(share and 100 * share)}% | {_met(share, 0.6, lower_is_better=False)} | "
                     f"{_fmt(anchor and anchor['authors_ms'] / 8)} | {_fmt(anchor and anchor['ours_ms'] / 8)} | "
                     f"{_fmt(ratio, 2)} {_met(ratio, 0.6) if anchor else ''} |")
    for model in SMALLEST:  # where the batch-8 time goes in the backend this goal measures
        lines += _profile_lines(s.saved_graph_profile(model, 8),
                                f"{model}, Paddle Inference + oneDNN, batch 8 (2 threads, profiling on)", top=10,
                                gemm_ops=GEMM_OPS)
    note = ("Throughput: `per_gmac.py --threads 2` (one process per model, median of 3 calls, wall time, "
            "intermediates kept as in `tools/benchmark.py`); the peak: the better of `paddle.matmul` and numpy on "
            "2048^2 at 2 threads, wall time, same sitting (by CPU time the processes also count OpenMP's "
            "spin-waiting). Ratio: `vs_authors.py --batch 8 --rounds 3`, wall time, both sides in that run. "
            "Profiles: Paddle Inference's own (`Config.enable_profile()`), op time per call.")
    return "Goal 2: batch 8, share of the GEMM peak and the authors' batch-8 time (2 threads)", note, lines


def goal3(s):
    goals = {"TransXNet_T": 0.7, "FocalTransformer_T": 0.7, "MixFormer_B4": 0.5}
    lines = ["| model | our step ms (CPU) | authors' step ms (CPU) | ratio of the medians (per round) | goal | | "
             "peak memory ours / authors MB | loader alone, img/s | / training step img/s (goal >= 3) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, goal in goals.items():
        if model not in AUTHORS:
            continue
        r = s.vs_authors(model, 2, batch=8, mode="train", rounds=3, repeats=2)
        loader = s.loader(model)
        rounds = ", ".join(f"{o / a:.2f}" for o, a in zip(r["rounds"]["ours"], r["rounds"]["authors"])) if r else "n/a"
        cpu = (r or {}).get("cpu_ms", {})
        memory = (r or {}).get("peak_rss_mb", {})
        step_rate = 8e3 / r["ours_ms"] if r else None
        rate = loader and loader["images_per_s"]
        lines.append(f"| {model} | {_fmt(r and r['ours_ms'], 0)} ({_fmt(cpu.get('ours'), 0)}) | "
                     f"{_fmt(r and r['authors_ms'], 0)} ({_fmt(cpu.get('authors'), 0)}) | "
                     f"{_fmt(r and r['ratio'], 2)} ({rounds}) | <= {goal} | {_met(r and r['ratio'], goal)} | "
                     f"{_fmt(memory.get('ours'), 0)} / {_fmt(memory.get('authors'), 0)} | {_fmt(rate)} | "
                     f"{_fmt(rate / step_rate if rate and step_rate else None)} "
                     f"{_met(rate / step_rate if rate and step_rate else None, 3, lower_is_better=False)} |")
    note = ("`vs_authors.py --mode train --batch 8 --threads 2 --rounds 3 --repeats 2`: forward, backward, AdamW, "
            "both sides eager, wall time (CPU time of all threads in brackets); peak resident memory per side. "
            "MixFormer-B4's anchor is the official Paddle dygraph. Loader: the config's `DataLoader.Train` "
            "(decode, random crop, flip, RandAugment, normalize, random erasing, Mixup/CutMix) on generated "
            "500x375 JPEGs in the main process (no workers).")
    profiles = []
    for model in TORCH_MODELS:
        profile = s.profile(model, "train")
        profiles += _profile_lines(profile, f"{model}, our training step (batch 8, 2 threads)")
        profile = s.profile(model, "train", framework="torch")
        profiles += _profile_lines(profile, f"{model}, the authors' training step (batch 8, 2 threads)")
    return "Goal 3: training step against the authors' (batch 8, 224x224, 2 threads)", note, lines + profiles


#: Paddle Inference's oneDNN ops that are GEMMs or convolutions (the work the GEMM peak measures)
GEMM_OPS = ("onednn_op.fc", "onednn_op.fused_conv2d", "onednn_op.conv2d", "onednn_op.fused_matmul",
            "onednn_op.matmul", "onednn_op.depthwise_conv2d", "onednn_op.fused_depthwise_conv2d")


def _profile_lines(profile, title, top=8, gemm_ops=()):
    if not profile:
        return []
    ops = sorted(profile["ops"], key=lambda op: -op[2])
    total = sum(op[2] for op in ops) or 1.0
    share = ""
    if gemm_ops:
        gemm = sum(op[2] for op in ops if op[0] in gemm_ops)
        share = (f" GEMMs and convolutions {100 * gemm / total:.0f}% of op time, everything else "
                 f"{100 * (1 - gemm / total):.0f}% ({len(ops)} op types, "
                 f"{sum(op[1] for op in ops):.0f} op calls per call);")
    lines = ["", f"Where the time goes: {title}, {statistics.median(profile['wall_ms']):.0f} ms wall per call;"
             f"{share} op time:", "", "| op | calls | ms | share |", "|---|---|---|---|"]
    lines += [f"| {name} | {calls:.0f} | {ms:.1f} | {100 * ms / total:.1f}% |" for name, calls, ms in ops[:top]]
    return lines


def goal4(s):
    dense = s.dense()
    forkfeat = s.vs_authors("TransXNet_T", 2, ours="dygraph", image_size=DENSE_SIZE, rounds=3, repeats=1)
    peak = (s.gemm_peak() or {}).get("peak_gflops")
    lines = [f"| model | GMACs {DENSE_SIZE} | eager ms | share of the GEMM peak ({_fmt(peak)} GFLOP/s) | "
             f"goal >= 40% | time per MAC vs 224 | goal <= 1.2 | saved graph (oneDNN) ms | saved graph share |",
             "|---|---|---|---|---|---|---|---|---|"]
    tops = []
    for result in (dense or {}).get("results", []):
        large, small = result["sizes"][DENSE_SIZE], result["sizes"]["224x224"]
        growth = (large["wall_ms"] / large["macs"]) / (small["wall_ms"] / small["macs"])
        share = 2 * large["macs"] / large["wall_ms"] / 1e6 / peak if peak else None
        saved = (result.get("saved_graph") or {}).get(DENSE_SIZE, {})
        saved_share = 2 * large["macs"] / saved["wall_ms"] / 1e6 / peak if saved.get("wall_ms") and peak else None
        lines.append(f"| {result['model']} | {large['macs'] / 1e9:.1f} | {large['wall_ms']:.0f} | "
                     f"{_fmt(share and 100 * share)}% | {_met(share, 0.4, lower_is_better=False)} | "
                     f"{growth:.2f} | {_met(growth, 1.2)} | {_fmt(saved.get('wall_ms'), 0)} | "
                     f"{_fmt(saved_share and 100 * saved_share)}% |")
        ops = large.get("ops") or []
        total = sum(op[2] for op in ops) or 1.0
        small_ms = {op[0]: op[2] for op in small.get("ops") or []}
        mac_growth = large["macs"] / small["macs"]
        tops.append(f"| {result['model']} | " + "; ".join(
            f"{name} {100 * ms / total:.0f}% (x{ms / small_ms[name] / mac_growth:.1f})" if small_ms.get(name)
            else f"{name} {100 * ms / total:.0f}%" for name, _, ms in sorted(ops, key=lambda op: -op[2])[:5]) + " |")
    if forkfeat:
        lines += ["", f"TransXNet-T pyramid at {DENSE_SIZE}, eager, 2 threads, against the authors' `fork_feat` model: "
                  f"ours {forkfeat['ours_ms']:.0f} ms, authors' {forkfeat['authors_ms']:.0f} ms, ratio "
                  f"**{forkfeat['ratio']:.2f}** (goal <= 0.6: {_met(forkfeat['ratio'], 0.6)}; rounds "
                  + ", ".join(f"{o / a:.2f}" for o, a in zip(forkfeat['rounds']['ours'], forkfeat['rounds']['authors']))
                  + ")."]
    if tops:
        lines += ["", f"Where the time goes at {DENSE_SIZE} (eager; share of op time, and in brackets the op's growth "
                  "from 224 over the MACs' growth: above 1 grows faster than the work):", "",
                  "| model | top ops |", "|---|---|"] + tops
    note = (f"`dense_profile.py --threads 2 --saved-graph` (`features_only=True`, batch 1, median of 2 calls, "
            f"wall time; the GEMM peak as in goal 2). Against the authors: `vs_authors.py --ours dygraph "
            f"--image-size {DENSE_SIZE} --rounds 3`, wall time.")
    return f"Goal 4: the backbone pyramid at {DENSE_SIZE} (batch 1, 2 threads)", note, lines


def goal5(s):
    gmac = s.per_gmac()
    runs = {m: r for m, r in ((gmac or {}).get("runs") or {}).items() if m in SMALLEST}
    if not runs:
        return "Goal 5: ms per GMAC", "per_gmac.py did not run", []
    sys.path.insert(0, HERE)
    from per_gmac import COLUMNS, per_gmac_rows
    rows = per_gmac_rows(runs, 8, use="cpu")
    lines = ["| model | GMACs | " + " | ".join(c.replace("bN", "b8") + " ms/GMAC (x best)" for c in COLUMNS)
             + " | goal (<= 1.3x best) |", "|---|---|" + "---|" * len(COLUMNS) + "---|"]
    for model, gmacs, cells in rows:
        worst = max(cells[c][1] for c in cells)
        verdict = _met(worst, 1.3) if model in NO_AUTHORS_CODE else ""
        lines.append(f"| {model} | {gmacs:.2f} | " + " | ".join(
            f"{cells[c][0]:.2f} ({cells[c][1]:.2f})" if c in cells else "n/a" for c in COLUMNS) + f" | {verdict} |")
    best = {c: min(rows, key=lambda row: row[2][c][0] if c in row[2] else float("inf"))[0] for c in COLUMNS}
    shown = set()
    for model in NO_AUTHORS_CODE:  # the missed columns, beside the best family's profile of the same form
        cells = next((r[2] for r in rows if r[0] == model), {})
        for column, (form, batch) in (("onednn b1", ("saved", 1)), ("eager b1", ("eager", 1))):
            if column not in cells or cells[column][1] <= 1.3:
                continue
            for name in (model, best[column]):
                if (name, form) in shown:
                    continue
                shown.add((name, form))
                if form == "saved":
                    lines += _profile_lines(s.saved_graph_profile(name, batch), f"{name}, Paddle Inference + "
                                            f"oneDNN, batch {batch} (2 threads, profiling on)", top=10,
                                            gemm_ops=GEMM_OPS)
                else:
                    lines += _profile_lines(s.profile(name, "infer"), f"{name}, our eager call (batch 1, 2 threads)")
    note = ("From goal 2's `per_gmac.py` run (2 threads, CPU time of the process; batch-8 columns per image). "
            "The goal applies to MAFormer and DualFormer, which have no authors' code; the worst column decides. "
            "Below the table: for every missed batch-1 column, the model's profile beside the best family's "
            "(batch-8 profiles: goal 2).")
    return "Goal 5: ms per GMAC against the families with authors' code", note, lines


GOALS = [goal0, goal1, goal2, goal3, goal4, goal5]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--goal", default="all", help="0-5 or all")
    parser.add_argument("--authors", default="/tmp/authors", help="folder of benchmarks/get_authors_code.sh")
    parser.add_argument("--torch-python", default=sys.executable,
                        help="interpreter with torch, onnx and onnxruntime for the authors' PyTorch code")
    parser.add_argument("--out", default=os.path.join(ROOT, "output", "goals"),
                        help="folder of every step's JSON and log, and the tables (goals.md)")
    parser.add_argument("--fresh", action="store_true", help="measure again even where a step's file is there")
    parser.add_argument("--render-only", action="store_true", help="only the tables, from the files in --out")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of the command itself: one small model per step, one run, few calls, "
                             "a small dense size (the figures mean nothing)")
    parser.add_argument("--child", choices=("gemm_peak", "loader", "onnx_profile", "saved_graph_profile"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.quick_runs = 1 if args.quick else 0
    if args.quick:
        global SMALLEST, MID, BACKEND_MODELS, DENSE_SIZE
        SMALLEST, MID, BACKEND_MODELS, DENSE_SIZE = ["MixFormer_B0", "TransXNet_T"], [], ["MixFormer_B0"], "256x320"
        for name in ("FocalTransformer_T",):
            AUTHORS.pop(name)
            TORCH_MODELS.remove(name)
    if args.goal != "all" and args.goal not in {str(i) for i in range(len(GOALS))}:
        parser.error(f"--goal {args.goal}: give 0-{len(GOALS) - 1} or all")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        result = {"gemm_peak": child_gemm_peak, "loader": child_loader, "onnx_profile": child_onnx_profile,
                  "saved_graph_profile": child_saved_graph_profile}[args.child](args)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        return 0
    if not args.render_only and not os.path.isdir(args.authors):
        raise SystemExit(f"--authors {args.authors}: not found; fetch the authors' code with "
                         f"`bash benchmarks/get_authors_code.sh {args.authors}`")
    sitting = Sitting(args)
    goals = GOALS if args.goal == "all" else [GOALS[int(args.goal)]]
    machine = sitting_machine_line(args)
    blocks = []
    for goal in goals:
        title, note, lines = goal(sitting)
        blocks.append(f"### {title}\n\nMachine: {machine}.\n{note}\n\n" + "\n".join(lines))
        print("\n" + blocks[-1] + "\n", flush=True)
    report = os.path.join(args.out, "goals.md" if args.goal == "all" else f"goal{args.goal}.md")
    with open(report + ".partial", "w") as f:
        f.write("\n\n".join(blocks) + "\n")
    os.replace(report + ".partial", report)
    print(f"tables written to {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
