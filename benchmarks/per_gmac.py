"""Milliseconds per GMAC of each family (issue 25, goal 5): eager Paddle and the exported graph
in Paddle Inference with oneDNN, at batch 1 and batch ``--batch``, beside the best family's figure.

    python benchmarks/per_gmac.py --threads 1          # smallest variant of each family
    python benchmarks/per_gmac.py --models MAFormer_S DualFormer_T TransXNet_T --rounds 3

One process per model and round (models in turn, so a change of the host's load hits every
model alike). Each builds the model (seed 0, eval), exports it (fixed ``--image-size``, dynamic
batch; ``ppvision_hybrid.export.export_inference_model``), builds the predictor as a user does
(``ppvision_hybrid.inference.create_predictor``, oneDNN on, ``--threads``, intermediates kept
between calls as ``tools/benchmark.py`` and ``vs_authors.py`` run it), and times eager
(``paddle.no_grad``) and predictor calls at batch 1 and ``--batch`` after one warm-up: the median
CPU time (user + system of the process; with one thread the work done, which moves little while
the process waits for a core on a shared host) and wall time of ``--repeats`` calls. MACs:
``ppvision_hybrid.model_info`` at the same size. For each column, ms per GMAC (batch 1: ms per
call; batch N: ms per image) from the median over rounds, and its ratio to the column's lowest
figure ("x best"); goal 5 asks MAFormer and DualFormer for <= 1.3x.
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from eager_ab import CHILD_TIMING, child_result, thread_env  # noqa: E402
SMALLEST = ["TransXNet_T", "FocalTransformer_T", "MixFormer_B0", "MAFormer_S", "DualFormer_T"]
COLUMNS = ("eager b1", "eager bN", "onednn b1", "onednn bN")

_CHILD = CHILD_TIMING + r"""
root, name = sys.argv[1:3]
size, batch, repeats, threads = map(int, sys.argv[3:7])
sys.path.insert(0, root)
import tempfile
import paddle, ppvision_hybrid
from ppvision_hybrid.export import export_inference_model
from ppvision_hybrid.inference import create_predictor

paddle.seed(0)
model = ppvision_hybrid.create_model(name)
model.eval()
macs = ppvision_hybrid.model_info(model, input_size=(3, size, size))["macs"]
rng = np.random.RandomState(0)
inputs = {"b1": rng.standard_normal((1, 3, size, size)).astype("float32"),
          "bN": rng.standard_normal((batch, 3, size, size)).astype("float32")}
out = {"macs": macs}
for key, x in inputs.items():
    xp = paddle.to_tensor(x)
    def eager():
        with paddle.no_grad():
            model(xp)
    out["eager " + key] = timed(eager, repeats)
with tempfile.TemporaryDirectory(prefix="ppvh_per_gmac_") as tmp:
    export_inference_model(model, tmp + "/m", image_shape=(3, size, size))
    run = create_predictor(tmp + "/m", enable_mkldnn=True, cpu_threads=threads, keep_intermediates=True)
    for key, x in inputs.items():
        out["onednn " + key] = timed(lambda: run(x), repeats)
print("RESULT " + json.dumps(out))
"""


def run_child(name, args):
    env = dict(thread_env(args.threads), PYTHONPATH=ROOT)
    argv = [ROOT, name, str(args.image_size), str(args.batch), str(args.repeats), str(args.threads)]
    return child_result(_CHILD, argv, env, ROOT, f"per_gmac: {name}")


def per_gmac_rows(runs, batch, use="cpu"):
    """Rows ``(model, GMACs, {column: (ms per GMAC, x best)})`` from ``{model: [child result per
    round]}``; ``use`` picks CPU or wall time. Batch-N columns are per image."""
    index = 0 if use == "cpu" else 1
    values, gmacs = {}, {}
    for model, rounds in runs.items():
        gmacs[model] = rounds[0]["macs"] / 1e9
        for column in COLUMNS:
            if column in rounds[0]:
                ms = statistics.median(r[column][index] for r in rounds)
                values.setdefault(model, {})[column] = ms / (batch if column.endswith("bN") else 1) / gmacs[model]
    best = {c: min(v[c] for v in values.values() if c in v) for c in COLUMNS if any(c in v for v in values.values())}
    return [(model, gmacs[model], {c: (v[c], v[c] / best[c]) for c in best if c in v}) for model, v in values.items()]


def markdown(rows, batch):
    columns = [c for c in COLUMNS if any(c in cells for _, _, cells in rows)]
    head = ["model", "GMACs"] + [c.replace("bN", f"b{batch}") + " ms/GMAC (x best)" for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, g, cells in rows:
        lines.append("| " + " | ".join([model, f"{g:.2f}"] + [
            f"{cells[c][0]:.1f} ({cells[c][1]:.2f})" if c in cells else "n/a" for c in columns]) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=SMALLEST)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per form")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    runs = {name: [] for name in args.models}
    for i in range(args.rounds):
        for name in args.models:
            result = run_child(name, args)
            runs[name].append(result)
            print(f"round {i + 1} {name} ({result['macs'] / 1e9:.2f} GMACs): " + ", ".join(
                f"{c.replace('bN', f'b{args.batch}')} {result[c][0]:.0f} ms CPU ({result[c][1]:.0f} wall)"
                for c in COLUMNS), flush=True)
    for use in ("cpu", "wall"):
        print(f"\nms per GMAC by {'CPU' if use == 'cpu' else 'wall'} time, median of {args.rounds} round(s), "
              f"{args.threads} thread(s):\n" + markdown(per_gmac_rows(runs, args.batch, use), args.batch))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), runs=runs), f, indent=1)
    return runs


if __name__ == "__main__":
    main()
