"""Parameter and multiply-accumulate counting that includes attention matmuls.

Layer hooks alone miss ``paddle.matmul`` / ``@`` (attention) and functional convolutions
(e.g. per-sample dynamic kernels), a known pitfall of hook-based counters. Here, during one
forward pass, we count:

* every ``nn.Conv1D/2D`` (hook): ``out.numel * (C_in / groups) * prod(kernel)``;
* every functional ``F.conv2d`` called outside a Conv layer: same formula from the weight;
* every ``F.linear`` (which ``nn.Linear`` calls): ``prod(batch dims) * in * out``;
* every ``paddle.matmul`` / ``paddle.bmm`` / ``Tensor.__matmul__``: ``out.numel * K``;
* every ``paddle.addmm`` (a Linear with its bias folded into the GEMM): ``out.numel * K``.

Norms, activations, pooling and element-wise ops are not counted (the convention of the
papers' tables and of the measured numbers in the counts measured on the authors' code, listed per family in docs/models/).
"""
import argparse
import contextlib

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["count_params", "count_macs", "model_info", "format_table", "main"]


def count_params(model, trainable_only=True) -> int:
    """Trainable parameters (Paddle lists BatchNorm statistics as non-trainable parameters)."""
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()
                   if not (trainable_only and p.stop_gradient)))


def _numel(shape):
    return int(np.prod([int(s) for s in shape])) if len(shape) else 1


@contextlib.contextmanager
def _counting(total):
    depth = [0]  # >0 while inside a Conv layer: its functional call is counted by the hook

    def conv_pre(layer, inputs):
        depth[0] += 1

    def conv_post(layer, inputs, out):
        depth[0] -= 1
        w = layer.weight.shape
        total[0] += _numel(out.shape) * int(np.prod(w[1:]))

    handles = []
    # The hooks are attached by the caller (needs the model); patch functions here.
    orig = dict(conv2d=F.conv2d, linear=F.linear, matmul=paddle.matmul, bmm=paddle.bmm,
                addmm=paddle.addmm, tmatmul=paddle.Tensor.__matmul__)

    def conv2d(x, weight, *a, **k):
        out = orig["conv2d"](x, weight, *a, **k)
        if depth[0] == 0:
            total[0] += _numel(out.shape) * int(np.prod(weight.shape[1:]))
        return out

    def linear(x, weight, *a, **k):
        out = orig["linear"](x, weight, *a, **k)
        total[0] += _numel(x.shape[:-1]) * int(weight.shape[0]) * int(weight.shape[1])
        return out

    def _mm_macs(x, y, out, transpose_x=False):
        if x.ndim == 1:
            k = x.shape[0]
        else:
            k = x.shape[-2] if transpose_x else x.shape[-1]
        total[0] += _numel(out.shape) * int(k)

    def matmul(x, y, transpose_x=False, transpose_y=False, name=None):
        out = orig["matmul"](x, y, transpose_x, transpose_y, name)
        _mm_macs(x, y, out, transpose_x)
        return out

    def bmm(x, y, name=None):
        out = orig["bmm"](x, y, name)
        _mm_macs(x, y, out)
        return out

    def addmm(input, x, y, *a, **k):
        out = orig["addmm"](input, x, y, *a, **k)
        _mm_macs(x, y, out)
        return out

    def tmatmul(x, y):
        out = orig["tmatmul"](x, y)
        _mm_macs(x, y, out)
        return out

    F.conv2d, F.linear, paddle.matmul, paddle.bmm, paddle.addmm = conv2d, linear, matmul, bmm, addmm
    paddle.Tensor.__matmul__ = tmatmul
    try:
        yield conv_pre, conv_post, handles
    finally:
        F.conv2d, F.linear, paddle.matmul, paddle.bmm, paddle.addmm = (
            orig["conv2d"], orig["linear"], orig["matmul"], orig["bmm"], orig["addmm"])
        paddle.Tensor.__matmul__ = orig["tmatmul"]
        for h in handles:
            h.remove()


def count_macs(model, input_size=(3, 224, 224), batch_size=1) -> int:
    """Multiply-accumulates of one forward pass at ``input_size`` (per batch of ``batch_size``)."""
    was_training = model.training
    model.eval()
    total = [0]
    with _counting(total) as (pre, post, handles):
        for layer in model.sublayers(include_self=True):
            if isinstance(layer, (nn.Conv1D, nn.Conv2D)):
                handles.append(layer.register_forward_pre_hook(pre))
                handles.append(layer.register_forward_post_hook(post))
        with paddle.no_grad():
            model(paddle.zeros([batch_size, *input_size], dtype="float32"))
    if was_training:
        model.train()
    return int(total[0])


def model_info(name_or_model, input_size=(3, 224, 224), class_num=1000, **kwargs) -> dict:
    """``{'name', 'params', 'macs', 'input_size', 'reference'}`` for a registered name or a model."""
    from . import registry
    reference = {}
    if isinstance(name_or_model, str):
        spec = registry.get_model_spec(name_or_model)
        model = registry.create_model(name_or_model, class_num=class_num, **kwargs)
        name, reference = name_or_model, spec.reference
    else:
        model = name_or_model
        name = getattr(model, "model_name", type(model).__name__)
    return dict(name=name, params=count_params(model), macs=count_macs(model, tuple(input_size)),
                input_size=tuple(input_size), reference=reference)


def format_table(rows) -> str:
    """Markdown table of ``model_info`` rows, with the reference numbers when known."""
    lines = ["| model | input | params (M) | GMACs | reference params (M) | reference GMACs |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ref = r.get("reference") or {}
        rp = f"{ref['params'] / 1e6:.3f}" if "params" in ref else "-"
        rm = f"{ref['macs'] / 1e9:.3f}" if "macs" in ref else "-"
        inp = "x".join(str(s) for s in r["input_size"])
        lines.append(f"| {r['name']} | {inp} | {r['params'] / 1e6:.3f} | {r['macs'] / 1e9:.3f} | {rp} | {rm} |")
    return "\n".join(lines)


# ---- command line (tools/model_info.py, console script ppvh-model-info) ----------------------
_CLI_DOC = """Print trainable parameters and multiply-accumulates (attention matmuls included) of registered
models as a markdown table, next to the reference numbers each model registers.

    ppvh-model-info MixFormer_B0 MixFormer_B4
    ppvh-model-info 'MixFormer*' --input-size 3 384 384
    ppvh-model-info --all
"""


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="ppvh-model-info", description=_CLI_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="model names or shell-style patterns ('MixFormer*')")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), default=None,
                        help="input size (default: each model's registered default, 3 224 224)")
    parser.add_argument("--class-num", type=int, default=1000)
    args = parser.parse_args(argv)
    if not args.names and not args.all:
        parser.error("give model names/patterns or --all")
    return args


def _resolve_names(patterns, use_all):
    from . import registry as pvh
    if use_all:
        return pvh.list_models()
    names = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            found = pvh.list_models(pattern)
            if not found:
                raise SystemExit(f"no registered model matches '{pattern}'")
        else:
            pvh.get_model_spec(pattern)  # unknown names fail with suggestions
            found = [pattern]
        names.extend(n for n in found if n not in names)
    return names


def main(argv=None):
    """``ppvh-model-info`` / ``python tools/model_info.py``: the table for names or patterns."""
    args = _parse_args(argv)
    from .registry import get_model_spec
    try:
        names = _resolve_names(args.names, args.all)
    except KeyError as e:
        raise SystemExit(str(e).strip("'\""))
    rows = []
    for name in names:
        default = get_model_spec(name).default_input
        size = tuple(args.input_size) if args.input_size else default
        row = model_info(name, input_size=size, class_num=args.class_num)
        if size != tuple(default) or args.class_num != 1000:
            row["reference"] = {}  # reference numbers hold for the default input and 1000 classes
        rows.append(row)
    print(format_table(rows))

    return 0
