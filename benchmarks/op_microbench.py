"""Single ops, Paddle eager against PyTorch eager on the same shapes (forward, and forward +
backward), plus this package's fast CPU kernels and standard-op reformulations: where the time
of TransXNet and Focal Transformer goes, op by op (docs/benchmarks.md, "Session 9").

Each framework runs in its own process (their OpenMP runtimes slow each other down in one
process); the processes alternate for ``--rounds`` rounds and each op's median over rounds is
reported, with every round's figure in ``--json``.

    python benchmarks/op_microbench.py --torch-python /path/to/venv-with-torch/bin/python \\
        --threads 2 --rounds 3 [--ops dwconv7 gelu ...] [--json ops.json]

Shapes follow TransXNet-T and Focal-T at batch 8, 224x224 (stage 1 unless named).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from ppvision_hybrid.timing import time_calls  # noqa: E402  (standard library only)

B = 8
DW_SHAPE = (B, 96, 56, 56)            # the depthwise shape (TransXNet-T stage-1 MS-FFN width / 2)
WIN = (B, 8, 7, 8, 7, 96)             # a window partition's 6-D view: 64 windows of 7x7, 96 channels
MAP = (B, 192, 56, 56)                # TransXNet-T stage-1 MS-FFN hidden map
TOKENS = (B, 3136, 96)                # Focal-T stage-1 tokens
ATTN_Q = (B, 3, 64, 49, 32)           # Focal-T stage-1 [B, heads, windows, 49, head_dim]
ATTN_K = (B, 3, 64, 181 + 49, 32)     # 181 fine + 49 pooled keys per window
CONV1X1 = (B, 48, 56, 56, 192)        # TransXNet-T stage-1 fc1: 48 -> 192 channels

#: ops with a fast form (the "paddle_fast" column: this package's kernels, or a formulation from
#: other standard ops); the others are not re-run there
FAST_OPS = ("dwconv3", "dwconv5", "dwconv7", "gelu", "add_bcast", "window_partition", "window_reverse", "slice_qkv",
            "conv1x1")
OPS = ("dwconv3", "dwconv5", "dwconv7", "window_partition", "window_reverse", "group_norm", "layer_norm",
       "gelu", "add", "add_bcast", "conv1x1", "matmul_attn", "gather_tokens", "roll", "unfold", "slice_qkv")
#: what the paddle_fast column runs for each op
FAST_FORMS = {
    "dwconv3": "layers.depthwise_conv2d (C++ kernel)", "dwconv5": "same", "dwconv7": "same",
    "gelu": "layers.gelu (C++ kernel)",
    "add_bcast": "x * s + b as layers.depthwise_conv2d with a 1x1 filter (the authors' LayerScale form)",
    "window_partition": "one paddle.gather of (window-row) chunks instead of a 6-D transpose",
    "window_reverse": "one paddle.gather of chunks instead of a 6-D transpose",
    "slice_qkv": "paddle.split(qkv, [1, 2]) instead of two slices (one concat in backward)",
    "conv1x1": "paddle.matmul(weight [Cout, Cin], x [N, Cin, H*W]) (one broadcast batched GEMM)",
}


def _paddle_ops(fast):
    import numpy as np
    import paddle
    import paddle.nn.functional as F
    from ppvision_hybrid.layers import depthwise_conv2d, gelu

    rng = np.random.RandomState(0)

    def t(shape, grad=False):
        v = paddle.to_tensor(rng.standard_normal(shape).astype("float32"))
        v.stop_gradient = not grad
        return v

    def fwd_bwd(fn, *inputs):
        def run():
            out = fn(*inputs)
            out.backward(paddle.ones_like(out))
            for v in inputs:
                v.clear_gradient()
        return run

    ops = {}
    for k in (3, 5, 7):
        x, w, b = t(DW_SHAPE, True), t((DW_SHAPE[1], 1, k, k), True), t((DW_SHAPE[1],), True)
        if fast:
            conv = (lambda k: lambda x, w, b: depthwise_conv2d(x, w, b, 1, k // 2))(k)
        else:
            conv = (lambda k: lambda x, w, b: F.conv2d(x, w, b, padding=k // 2, groups=DW_SHAPE[1]))(k)
        ops[f"dwconv{k}"] = ((lambda c, x, w, b: lambda: c(x, w, b))(conv, x, w, b), fwd_bwd(conv, x, w, b))
    win = t(WIN, True)
    windows = t((B * 64, 49, WIN[-1]), True)
    if fast:
        # rows of ws * C floats: the map [B, H * nW, ws * C] -> window order, and back
        order = np.arange(56 * 8).reshape(8, 7, 8).transpose(0, 2, 1).reshape(-1)
        part_index, rev_index = paddle.to_tensor(order), paddle.to_tensor(np.argsort(order))
        part = (lambda v: paddle.gather(v.reshape([B, 56 * 8, 7 * WIN[-1]]), part_index, axis=1).reshape([-1, 49, WIN[-1]]))
        rev = (lambda v: paddle.gather(v.reshape([B, 56 * 8, 7 * WIN[-1]]), rev_index, axis=1).reshape([B, 56, 56, WIN[-1]]))
    else:
        part = (lambda v: v.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, 49, WIN[-1]]))
        rev = (lambda v: v.reshape([B, 8, 8, 7, 7, WIN[-1]]).transpose([0, 1, 3, 2, 4, 5]).reshape([B, 56, 56, WIN[-1]]))
    ops["window_partition"] = (lambda: part(win), fwd_bwd(part, win))
    ops["window_reverse"] = (lambda: rev(windows), fwd_bwd(rev, windows))
    m, gw, gb = t(MAP, True), t((MAP[1],), True), t((MAP[1],), True)
    gn = (lambda x, w, b: F.group_norm(x, 1, weight=w, bias=b))
    ops["group_norm"] = (lambda: gn(m, gw, gb), fwd_bwd(gn, m, gw, gb))
    tok, lw, lb = t(TOKENS, True), t((TOKENS[-1],), True), t((TOKENS[-1],), True)
    ln = (lambda x, w, b: F.layer_norm(x, TOKENS[-1], weight=w, bias=b))
    ops["layer_norm"] = (lambda: ln(tok, lw, lb), fwd_bwd(ln, tok, lw, lb))
    act = gelu if fast else F.gelu
    ops["gelu"] = (lambda: act(m), fwd_bwd(act, m))
    m2, scale = t(MAP, True), t((MAP[1], 1, 1), True)
    ops["add"] = (lambda: m + m2, fwd_bwd(lambda a, b: a + b, m, m2))
    if fast:
        scale_shift = (lambda a, s: depthwise_conv2d(a, s.unsqueeze(1), s.reshape([-1])))
    else:
        scale_shift = (lambda a, s: a * s + s)
    ops["add_bcast"] = (lambda: scale_shift(m, scale), fwd_bwd(scale_shift, m, scale))
    n, cin, h, wd, cout = CONV1X1
    cx, cw = t((n, cin, h, wd), True), t((cout, cin, 1, 1), True)
    if fast:
        conv1x1 = (lambda x, w: paddle.matmul(w.reshape([cout, cin]), x.reshape([n, cin, h * wd])).reshape([n, cout, h, wd]))
    else:
        conv1x1 = (lambda x, w: F.conv2d(x, w))
    ops["conv1x1"] = (lambda: conv1x1(cx, cw), fwd_bwd(conv1x1, cx, cw))
    q, kk = t(ATTN_Q, True), t(ATTN_K, True)
    mm = (lambda a, b: paddle.matmul(a, b, transpose_y=True))
    ops["matmul_attn"] = (lambda: mm(q, kk), fwd_bwd(mm, q, kk))
    idx = paddle.to_tensor(rng.permutation(TOKENS[1]).astype("int64"))
    gather = (lambda v: paddle.gather(v, idx, axis=1))
    ops["gather_tokens"] = (lambda: gather(tok), fwd_bwd(gather, tok))
    nhwc = t((B, 56, 56, 96), True)
    roll = (lambda v: paddle.roll(v, [3, 3], axis=[1, 2]))
    ops["roll"] = (lambda: roll(nhwc), fwd_bwd(roll, nhwc))
    small = t((B, 24, 56, 56), True)
    unfold = (lambda v: F.unfold(v, 7, paddings=3))
    ops["unfold"] = (lambda: unfold(small), fwd_bwd(unfold, small))
    qkv = t((3,) + ATTN_Q[:2] + (3136, 32), True)
    if fast:
        def two_slices(v):
            q, kv = paddle.split(v, [1, 2], axis=0)
            return q[0] * 1.0 + kv.sum(axis=0)
    else:
        def two_slices(v):  # Focal's q = qkv[0], kv = qkv[1:]
            return v[0] * 1.0 + v[1:].sum(axis=0)
    ops["slice_qkv"] = (lambda: two_slices(qkv), fwd_bwd(two_slices, qkv))
    return ops


def _torch_ops():
    import numpy as np
    import torch
    import torch.nn.functional as F

    rng = np.random.RandomState(0)

    def t(shape, grad=False):
        return torch.from_numpy(rng.standard_normal(shape).astype("float32")).requires_grad_(grad)

    def fwd_bwd(fn, *inputs):
        def run():
            out = fn(*inputs)
            out.backward(torch.ones_like(out))
            for v in inputs:
                v.grad = None
        return run

    def no_grad(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    ops = {}
    for k in (3, 5, 7):
        x, w, b = t(DW_SHAPE, True), t((DW_SHAPE[1], 1, k, k), True), t((DW_SHAPE[1],), True)
        conv = (lambda k: lambda x, w, b: F.conv2d(x, w, b, padding=k // 2, groups=DW_SHAPE[1]))(k)
        ops[f"dwconv{k}"] = (no_grad((lambda c, x, w, b: lambda: c(x, w, b))(conv, x, w, b)), fwd_bwd(conv, x, w, b))
    win = t(WIN, True)
    part = (lambda v: v.permute(0, 1, 3, 2, 4, 5).reshape(-1, 49, WIN[-1]))
    ops["window_partition"] = (no_grad(lambda: part(win)), fwd_bwd(part, win))
    windows = t((B * 64, 49, WIN[-1]), True)
    rev = (lambda v: v.reshape(B, 8, 8, 7, 7, WIN[-1]).permute(0, 1, 3, 2, 4, 5).reshape(B, 56, 56, WIN[-1]))
    ops["window_reverse"] = (no_grad(lambda: rev(windows)), fwd_bwd(rev, windows))
    m, gw, gb = t(MAP, True), t((MAP[1],), True), t((MAP[1],), True)
    gn = (lambda x, w, b: F.group_norm(x, 1, w, b))
    ops["group_norm"] = (no_grad(lambda: gn(m, gw, gb)), fwd_bwd(gn, m, gw, gb))
    tok, lw, lb = t(TOKENS, True), t((TOKENS[-1],), True), t((TOKENS[-1],), True)
    ln = (lambda x, w, b: F.layer_norm(x, (TOKENS[-1],), w, b))
    ops["layer_norm"] = (no_grad(lambda: ln(tok, lw, lb)), fwd_bwd(ln, tok, lw, lb))
    ops["gelu"] = (no_grad(lambda: F.gelu(m)), fwd_bwd(F.gelu, m))
    m2, scale = t(MAP, True), t((MAP[1], 1, 1), True)
    ops["add"] = (no_grad(lambda: m + m2), fwd_bwd(lambda a, b: a + b, m, m2))
    ops["add_bcast"] = (no_grad(lambda: m * scale + scale), fwd_bwd(lambda a, s: a * s + s, m, scale))
    n, cin, h, wd, cout = CONV1X1
    cx, cw = t((n, cin, h, wd), True), t((cout, cin, 1, 1), True)
    ops["conv1x1"] = (no_grad(lambda: F.conv2d(cx, cw)), fwd_bwd(lambda x, w: F.conv2d(x, w), cx, cw))
    q, kk = t(ATTN_Q, True), t(ATTN_K, True)
    mm = (lambda a, b: torch.matmul(a, b.transpose(-1, -2)))
    ops["matmul_attn"] = (no_grad(lambda: mm(q, kk)), fwd_bwd(mm, q, kk))
    idx = torch.from_numpy(rng.permutation(TOKENS[1]).astype("int64"))
    gather = (lambda v: v.index_select(1, idx))
    ops["gather_tokens"] = (no_grad(lambda: gather(tok)), fwd_bwd(gather, tok))
    nhwc = t((B, 56, 56, 96), True)
    roll = (lambda v: torch.roll(v, (3, 3), dims=(1, 2)))
    ops["roll"] = (no_grad(lambda: roll(nhwc)), fwd_bwd(roll, nhwc))
    small = t((B, 24, 56, 56), True)
    unfold = (lambda v: F.unfold(v, 7, padding=3))
    ops["unfold"] = (no_grad(lambda: unfold(small)), fwd_bwd(unfold, small))
    qkv = t((3,) + ATTN_Q[:2] + (3136, 32), True)
    two_slices = (lambda v: v[0] * 1.0 + v[1:].sum(dim=0))
    ops["slice_qkv"] = (no_grad(lambda: two_slices(qkv)), fwd_bwd(two_slices, qkv))
    return ops


def child(args):
    """One round in this process: every op's median forward and forward+backward ms, as JSON."""
    if args.child == "torch":
        import torch
        torch.set_num_threads(args.threads)
        ops = _torch_ops()
    else:
        ops = _paddle_ops(fast=args.child == "paddle_fast")
    out = {}
    for name in args.ops:
        if name not in ops or (args.child == "paddle_fast" and name not in FAST_OPS):
            continue
        forward, forward_backward = ops[name]
        fwd = time_calls(forward, args.warmup, args.repeats)
        both = time_calls(forward_backward, args.warmup, args.repeats)
        out[name] = (fwd[len(fwd) // 2], both[len(both) // 2])
    print(json.dumps(out), flush=True)


def _env(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               FLAGS_paddle_num_threads=str(threads))
    env.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    return env


def run_round(python, side, args):
    cmd = [python, os.path.abspath(__file__), "--child", side, "--threads", str(args.threads), "--warmup",
           str(args.warmup), "--repeats", str(args.repeats), "--ops", *args.ops]
    done = subprocess.run(cmd, env=_env(args.threads), capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side} round failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", default=None, help="an interpreter with torch (omit: Paddle only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    parser.add_argument("--json", default=None, help="write every round's figures here")
    parser.add_argument("--child", choices=("paddle", "paddle_fast", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    sides = [("paddle", sys.executable), ("paddle_fast", sys.executable)]
    if args.torch_python:
        sides.append(("torch", args.torch_python))
    rounds = {side: [] for side, _ in sides}
    for r in range(args.rounds):
        for side, python in (sides if r % 2 == 0 else sides[::-1]):
            rounds[side].append(run_round(python, side, args))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    names = [s for s, _ in sides]
    print("paddle_fast: " + "; ".join(f"{op}: {form}" for op, form in FAST_FORMS.items() if op in args.ops))
    header = "| op | " + " | ".join(f"{s} fwd ms | {s} fwd+bwd ms" for s in names) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(names)))
    table = {}
    for op in args.ops:
        cells, table[op] = [], {}
        for side in names:
            per_round = [res[op] for res in rounds[side] if op in res]
            if not per_round:
                cells += ["", ""]
                continue
            fwd, both = _median([p[0] for p in per_round]), _median([p[1] for p in per_round])
            table[op][side] = dict(fwd_ms=fwd, fwd_bwd_ms=both, rounds=per_round)
            cells += [f"{fwd:.2f}", f"{both:.2f}"]
        print(f"| {op} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=args.threads, rounds=args.rounds, ops=table), f, indent=1)
    return table


if __name__ == "__main__":
    main()
