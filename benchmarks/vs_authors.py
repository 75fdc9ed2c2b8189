"""Batch-1 latency of our Paddle Inference predictor against the authors' released code, measured
back to back on the same machine.

The authors' code is never part of this repository: point ``--authors-path`` at your own checkout
(for example a scratch clone of LMMMEng/TransXNet or microsoft/Focal-Transformer) and
``--authors-python`` at an interpreter that can run it (a venv with torch for the PyTorch
releases). Each contender runs in its own process -- PyTorch and Paddle in one process slow
each other down through their OpenMP/MKL runtimes -- and the processes alternate for
``--rounds`` rounds, so drifts in machine speed hit both sides alike. Reported: the median over
rounds of each process's median latency, and the ratio ours / authors'. Our process runs with
its OpenMP threads pinned to cores (``KMP_AFFINITY``, the default of deploy/python/predict_cls.py;
``--no-pin`` to turn off); the authors' PyTorch uses GNU OpenMP, and no pinning we tried
(``OMP_PROC_BIND``/``OMP_PLACES``, ``GOMP_CPU_AFFINITY``, ``taskset``) made it faster. Our
predictor keeps its intermediate tensors allocated between calls (``keep_intermediates``, the
setting deploy/configs/inference_cls.yaml ships; ``--free-intermediates`` times Paddle's default).

    python benchmarks/vs_authors.py --model TransXNet_T \\
        --authors-python /tmp/tx/venv/bin/python --authors-path /tmp/tx:/tmp/tx/stubs \\
        --authors-build official_transxnet:transxnet_t --threads 1 --rounds 5

    python benchmarks/vs_authors.py --model FocalTransformer_T \\
        --authors-python /tmp/focal/venv/bin/python --authors-path /tmp/focal \\
        --authors-build focal_transformer_official:FocalTransformer \\
        --authors-kwargs '{"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24],
                          "focal_levels": [2, 2, 2, 2], "focal_windows": [7, 5, 3, 1],
                          "expand_sizes": [3, 3, 3, 3]}'

    # the official MixFormer is Paddle code: timed in dygraph, as its users run it
    python benchmarks/vs_authors.py --model MixFormer_B4 --authors-framework paddle \\
        --authors-python python --authors-path /tmp/mixformer --authors-build official_mixformer:MixFormer_B4

``--interleave N`` keeps both processes alive instead and alternates single calls (ABBA order,
``--gap-ms`` apart), N per side: each pair of calls sees the machine in the same second, and the
median of the per-pair ratios is reported next to the ratio of medians. ``--max-ratio 0.8`` makes
the run fail (exit status 1) when the ratio of medians misses the goal.

Not a timed test: numbers depend on the machine. Our output is checked against our dygraph model
(relative error <= 1e-4) in every round before it is timed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _thread_env(threads, pin=False):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               FLAGS_paddle_num_threads=str(threads))
    # Both sides: MKL's AVX2 path on AMD CPUs (the MKL in Paddle's wheel otherwise takes a slow
    # generic path; the official MixFormer in dygraph, 2 threads: 446 -> 325 ms on the AMD EPYC
    # host). Newer MKLs, such as PyTorch's, ignore it. tools/benchmark.py sets it too.
    env.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    if pin:  # Intel OpenMP (Paddle's) only; the authors' PyTorch uses GNU OpenMP, which ignores it
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        from tools.benchmark import PIN_AFFINITY
        env.setdefault("KMP_AFFINITY", PIN_AFFINITY)
    return env


def _timer():
    """tools/benchmark.py's ``time_calls``; that module imports only the standard library at the
    top, so the authors' interpreter (which may lack paddle) can use it too."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from tools.benchmark import time_calls
    return time_calls


def _time_or_serve(run, args, info):
    """A round's child: time ``repeats`` calls and print one JSON line. With ``--serve`` (the
    interleaved mode): warm up, print a ready line, then time one call per ``run`` line on stdin
    and print its milliseconds, until stdin closes."""
    time_calls = _timer()
    if not args.serve:
        times = time_calls(run, args.warmup, args.repeats)
        print(json.dumps(dict(info, median_ms=times[len(times) // 2], min_ms=times[0])), flush=True)
        return
    time_calls(run, args.warmup, 0)
    print(json.dumps(dict(info, ready=True)), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        print(json.dumps(dict(ms=time_calls(run, 0, 1)[0])), flush=True)


def child_authors(args):
    """Runs in ``--authors-python``: build the authors' model from their checkout and time it."""
    import importlib
    import numpy as np
    for path in reversed(args.authors_path.split(os.pathsep)):
        sys.path.insert(0, path)
    module_name, _, builder = args.authors_build.partition(":")
    model = getattr(importlib.import_module(module_name), builder)(**json.loads(args.authors_kwargs))
    x = np.random.RandomState(0).standard_normal((1, 3, args.image_size, args.image_size)).astype("float32")
    if args.authors_framework == "torch":
        import torch
        torch.set_num_threads(args.threads)
        model.eval()
        xt = torch.from_numpy(x)

        def run():
            with torch.no_grad():
                model(xt)
    else:
        import paddle
        model.eval()
        xp = paddle.to_tensor(x)

        def run():
            with paddle.no_grad():
                model(xp)
    _time_or_serve(run, args, dict(side="authors"))


def child_ours(args):
    """Runs in this interpreter: time our exported model in the Paddle Inference predictor."""
    import numpy as np
    sys.path.insert(0, ROOT)
    from ppvision_hybrid.inference import create_predictor
    x = np.random.RandomState(0).standard_normal((1, 3, args.image_size, args.image_size)).astype("float32")
    predictor = create_predictor(args.model_dir, enable_mkldnn=not args.no_onednn, cpu_threads=args.threads,
                                 keep_intermediates=not args.free_intermediates)
    out = predictor(x)
    expected = np.load(os.path.join(args.model_dir, "expected.npy"))
    error = float(np.abs(out - expected).max() / np.abs(expected).max())
    if error > 1e-4:
        raise SystemExit(f"exported model differs from dygraph: relative error {error:.2e}")
    _time_or_serve(lambda: predictor(x), args, dict(side="ours", rel_error=error))


def export_ours(args):
    import numpy as np
    sys.path.insert(0, ROOT)
    import paddle
    import ppvision_hybrid
    from ppvision_hybrid.export import export_inference_model
    paddle.seed(0)
    model = ppvision_hybrid.create_model(args.model)
    model.eval()
    export_inference_model(model, args.model_dir, image_shape=(3, args.image_size, args.image_size))
    x = np.random.RandomState(0).standard_normal((1, 3, args.image_size, args.image_size)).astype("float32")
    with paddle.no_grad():
        np.save(os.path.join(args.model_dir, "expected.npy"), model(paddle.to_tensor(x)).numpy())


def _run_child(python, side, args):
    cmd = [python, os.path.abspath(__file__), "--child", side] + _forward_args(args)
    pin = side == "ours" and not args.no_pin
    done = subprocess.run(cmd, env=_thread_env(args.threads, pin), capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side} run failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


class _Server:
    """One side kept alive for the interleaved mode (``--serve`` child)."""

    def __init__(self, python, side, args, log_dir):
        cmd = [python, os.path.abspath(__file__), "--child", side, "--serve"] + _forward_args(args)
        self.side, self.cmd = side, cmd
        # stderr to a file: a full pipe of framework warnings would block the child
        self.log = open(os.path.join(log_dir, side + ".log"), "w+")
        env = _thread_env(args.threads, side == "ours" and not args.no_pin)
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
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._reply()["ms"]

    def close(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def interleaved(args):
    """Both sides alive at once, one call each in turn (ABBA order), ``gap_ms`` apart: machine
    drift hits both sides within the same second, not one round each. Returns per-call times."""
    import time
    times = {"authors": [], "ours": []}
    with tempfile.TemporaryDirectory() as log_dir:
        servers = {}
        try:
            servers["authors"] = _Server(args.authors_python, "authors", args, log_dir)
            servers["ours"] = _Server(sys.executable, "ours", args, log_dir)
            for i in range(args.interleave):
                for side in (("authors", "ours") if i % 2 == 0 else ("ours", "authors")):
                    time.sleep(args.gap_ms / 1e3)
                    times[side].append(servers[side].call())
                if (i + 1) % 10 == 0 or i + 1 == args.interleave:
                    print(f"pair {i + 1}/{args.interleave}: authors {times['authors'][-1]:.1f} ms, "
                          f"ours {times['ours'][-1]:.1f} ms", flush=True)
        finally:
            for server in servers.values():
                server.close()
    return times


def _forward_args(args):
    out = ["--model", args.model, "--model-dir", args.model_dir, "--threads", str(args.threads),
           "--image-size", str(args.image_size), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
           "--authors-path", args.authors_path, "--authors-build", args.authors_build,
           "--authors-kwargs", args.authors_kwargs, "--authors-framework", args.authors_framework]
    return out + (["--no-onednn"] if args.no_onednn else []) + (["--free-intermediates"] if args.free_intermediates else [])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="our registered model name")
    parser.add_argument("--authors-python", default=sys.executable)
    parser.add_argument("--authors-path", default="", help=f"'{os.pathsep}'-separated import paths of the authors' code")
    parser.add_argument("--authors-build", default="", help="module:callable building the authors' model")
    parser.add_argument("--authors-kwargs", default="{}", help="JSON keyword arguments of that callable")
    parser.add_argument("--authors-framework", choices=("torch", "paddle"), default="torch")
    parser.add_argument("--model-dir", default=None, help="where to export ours (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=6, help="timed calls per process")
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
                        help="exit with status 1 when the ratio of medians (ours / authors') exceeds R "
                             "(the goal of docs/benchmarks.md is 0.8)")
    parser.add_argument("--child", choices=("authors", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def check_goal(ratio, max_ratio):
    """SystemExit (status 1) when ``ratio`` exceeds ``max_ratio`` (None: no goal)."""
    if max_ratio is not None and ratio > max_ratio:
        print(f"goal missed: ratio {ratio:.2f} > {max_ratio:.2f}", file=sys.stderr)
        raise SystemExit(1)


def _backend(args):
    return ("Paddle Inference" + ("" if args.no_onednn else " + oneDNN") + ("" if args.no_pin else ", pinned")
            + (", intermediates freed" if args.free_intermediates else ", intermediates kept"))


def _report(args, authors, ours, authors_best, ours_best, mode="", **extra):
    """Print the table row and the best-call line, apply ``--max-ratio``, return the numbers."""
    print(f"| {args.model} | {args.authors_framework} ({args.authors_build}) | {authors:.1f} | "
          f"{_backend(args)}{mode} | {ours:.1f} | {ours / authors:.2f} | {args.threads} |")
    print(f"best calls: authors {authors_best:.1f} ms, ours {ours_best:.1f} ms, ratio {ours_best / authors_best:.2f}")
    check_goal(ours / authors, args.max_ratio)
    return dict(authors_ms=authors, ours_ms=ours, ratio=ours / authors, authors_best_ms=authors_best,
                ours_best_ms=ours_best, best_ratio=ours_best / authors_best, **extra)


def _report_interleaved(args, times):
    # each pair ran within about a second, so its ratio carries little of the machine's drift
    pair_ratio = _median([o / a for o, a in zip(times["ours"], times["authors"])])
    print(f"interleaved, {args.interleave} calls per side: median of per-pair ratios {pair_ratio:.2f}")
    return _report(args, _median(times["authors"]), _median(times["ours"]), min(times["authors"]),
                   min(times["ours"]), mode=", interleaved", pair_ratio=pair_ratio, calls=times)


def main(argv=None):
    args = parse_args(argv)
    if args.child == "authors":
        return child_authors(args)
    if args.child == "ours":
        return child_ours(args)
    if not args.authors_build:
        raise SystemExit("--authors-build module:callable is required (see the module docstring)")
    with tempfile.TemporaryDirectory() as tmp:
        args.model_dir = args.model_dir or os.path.join(tmp, args.model)
        export_ours(args)
        if args.interleave:
            return _report_interleaved(args, interleaved(args))
        results = {"authors": [], "ours": []}
        best = {"authors": [], "ours": []}
        for r in range(args.rounds):
            for side, python in (("authors", args.authors_python), ("ours", sys.executable)):
                res = _run_child(python, side, args)
                results[side].append(res["median_ms"])
                best[side].append(res["min_ms"])
            print(f"round {r + 1}/{args.rounds}: authors {results['authors'][-1]:.1f} ms, "
                  f"ours {results['ours'][-1]:.1f} ms", flush=True)

    # Best case: each side's fastest call over all rounds. Interference from other virtual
    # machines only adds time, so on a shared host this ratio drifts less than the medians'.
    return _report(args, _median(results["authors"]), _median(results["ours"]), min(best["authors"]),
                   min(best["ours"]), rounds=results)


if __name__ == "__main__":
    main()
