"""Eager (dygraph) speed of two checkouts of this repository, in alternating processes: inference
at batch 1 and batch ``--batch``, and a training step (forward, backward, AdamW) at ``--batch``.

    git worktree add /tmp/base <commit>
    python benchmarks/eager_ab.py --before /tmp/base --after . --models MAFormer_S DualFormer_T \\
        --threads 1 --rounds 3

Per round and model, one process per checkout (A B, then B A in the next round) imports that
checkout's package, builds the model with the same seed and reports the median wall and CPU
time (user + system of the process: with one thread the work done, which moves little when the
process waits for a core on a shared host) of ``--repeats`` calls after one warm-up call, for
each measured form. Every run is printed; the summary gives each side's median over rounds and
the ratio after / before (CPU and wall). ``--json`` writes every run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Shared by the child processes of this script and of per_gmac.py: ``timed(call, repeats)`` ->
# (median CPU ms, median wall ms) after one warm-up call. Inline, not imported from the package:
# the children also run in older checkouts, whose package may not have it.
CHILD_TIMING = r"""
import json, sys, time
import numpy as np

def timed(call, repeats):
    call()
    wall, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        call()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpus.append((time.process_time() - c0) * 1e3)
    return float(np.median(cpus)), float(np.median(wall))
"""

_CHILD = CHILD_TIMING + r"""
root, name, forms = sys.argv[1], sys.argv[2], sys.argv[5].split(",")
batch, repeats, size = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[6])
sys.path.insert(0, root)
import paddle, ppvision_hybrid

paddle.seed(0)
model = ppvision_hybrid.create_model(name)
rng = np.random.RandomState(0)
out = {}
for form in forms:
    if form in ("b1", "bN"):
        model.eval()
        x = paddle.to_tensor(rng.standard_normal((1 if form == "b1" else batch, 3, size, size)).astype("float32"))
        def step():
            with paddle.no_grad():
                model(x)
    else:
        model.train()
        opt = paddle.optimizer.AdamW(learning_rate=1e-4, parameters=model.parameters(), weight_decay=0.05)
        x = paddle.to_tensor(rng.standard_normal((batch, 3, size, size)).astype("float32"))
        y = paddle.to_tensor(rng.randint(0, 1000, size=(batch,)).astype("int64"))
        def step():
            paddle.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.clear_grad(set_to_zero=False)
    out[form] = timed(step, repeats)
print("RESULT " + json.dumps(out))
"""

FORMS = {"b1": "inference b1", "bN": "inference b{batch}", "train": "training step b{batch}"}


def child_result(script, argv, env, cwd, label):
    """Run ``script`` (a child of this script or of per_gmac.py) and return its RESULT line's JSON."""
    proc = subprocess.run([sys.executable, "-c", script, *argv], env=env, cwd=cwd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"{label} failed:\n{proc.stderr[-2000:]}")


def run_child(root, name, args, env):
    argv = [os.path.abspath(root), name, str(args.batch), str(args.repeats), ",".join(args.forms),
            str(args.image_size)]
    return child_result(_CHILD, argv, env, os.path.abspath(root), f"{name} in {root}")


def thread_env(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               FLAGS_paddle_num_threads=str(threads))
    env.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    env.pop("PYTHONPATH", None)  # each child imports its own checkout's package (its cwd and sys.path)
    return env


def summarize(runs, forms, batch):
    """Lines of the summary table: per model and form, medians over rounds and after / before."""
    lines = ["| model | form | before CPU ms (wall) | after CPU ms (wall) | after / before CPU (wall) |",
             "|---|---|---|---|---|"]
    for name in runs:
        for form in forms:
            med = {side: [statistics.median(r[side][form][k] for r in runs[name]) for k in (0, 1)]
                   for side in ("before", "after")}
            b, a = med["before"], med["after"]
            lines.append(f"| {name} | {FORMS[form].format(batch=batch)} | {b[0]:.0f} ({b[1]:.0f}) | "
                         f"{a[0]:.0f} ({a[1]:.0f}) | {a[0] / b[0]:.2f} ({a[1] / b[1]:.2f}) |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="checkout A (the baseline)")
    parser.add_argument("--after", required=True, help="checkout B")
    parser.add_argument("--models", nargs="+", default=["MAFormer_S", "DualFormer_T"])
    parser.add_argument("--forms", nargs="+", choices=sorted(FORMS), default=["b1", "bN", "train"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per form and process")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    env = thread_env(args.threads)
    runs = {name: [] for name in args.models}
    for i in range(args.rounds):
        for name in args.models:
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            result = {}
            for side in order:
                result[side] = run_child(getattr(args, side), name, args, env)
                cells = ", ".join(f"{FORMS[f].format(batch=args.batch)} {result[side][f][0]:.0f} ms CPU "
                                  f"({result[side][f][1]:.0f} wall)" for f in args.forms)
                print(f"round {i + 1} {name} {side}: {cells}", flush=True)
            runs[name].append(result)
    print("\n".join([""] + summarize(runs, args.forms, args.batch)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), runs=runs), f, indent=1)
    return runs


if __name__ == "__main__":
    main()
