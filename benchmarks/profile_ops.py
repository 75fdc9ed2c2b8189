"""Where the time of one inference call or one training step goes, op by op: our model under
paddle.profiler, or the authors' PyTorch model under torch.profiler (docs/benchmarks.md,
"Session 9").

    # ours, a training step (forward, backward, AdamW) at batch 8
    python benchmarks/profile_ops.py --model TransXNet_T --mode train --batch 8 --threads 2
    # the authors' code, same step (an interpreter with torch; the vs_authors.py options)
    /venv-torch/bin/python benchmarks/profile_ops.py --framework torch --model TransXNet_T \\
        --authors-path /tmp/authors/TransXNet/models --authors-build transxnet:transxnet_t \\
        --authors-kwargs '{"drop_path_rate": 0.1}' --mode train --batch 8 --threads 2
    # dense resolution: the backbone pyramid at 800x1333 (ours features_only; theirs fork_feat)
    python benchmarks/profile_ops.py --model TransXNet_T --features-only --height 800 --width 1333
    # projection: the model's depthwise convs and GELUs swapped for the fast CPU kernels of
    # ppvision_hybrid.layers at run time, timed against the standard ops (A/B, one process)
    python benchmarks/profile_ops.py --model TransXNet_T --mode train --compare-fast 4

Printed: the step's wall and CPU time (median of the timed steps; CPU time counts every thread,
so on a shared host it drifts less than the wall time), then the ``--top`` ops by time per step.
Paddle lists forward ops as ``<op> dygraph`` and backward ones as ``Global_<Op>GradNode``
(total time of the op); PyTorch lists ``aten::`` kernels by self time (backward kernels
included under their own names).
"""
import argparse
import json
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import vs_authors  # noqa: E402  (standard library only at import)


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def timed(step, steps):
    """Wall and CPU milliseconds of ``steps`` calls (after the caller's warm-up)."""
    wall, cpu = [], []
    for _ in range(steps):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return wall, cpu


def _input_shape(args):
    return (args.batch, 3, args.height or args.image_size, args.width or args.image_size)


def _random_batch(args):
    import numpy as np
    x = np.random.RandomState(0).standard_normal(_input_shape(args)).astype("float32")
    return x, np.random.RandomState(1).randint(0, 1000, size=(args.batch,)).astype("int64")


def paddle_step(args):
    import paddle
    sys.path.insert(0, ROOT)
    import ppvision_hybrid
    paddle.seed(0)
    kwargs = json.loads(args.ours_kwargs)
    if args.features_only:
        kwargs["features_only"] = True
    model = ppvision_hybrid.create_model(args.model, **kwargs)
    x, labels = _random_batch(args)
    if args.mode == "train":
        return model, vs_authors.paddle_training_step(model, x, labels)
    model.eval()
    xp = paddle.to_tensor(x)

    def step():
        with paddle.no_grad():
            model(xp)
    return model, step


def torch_step(args):
    import torch
    torch.set_num_threads(args.threads)
    kwargs = json.loads(args.authors_kwargs)
    if args.features_only:
        kwargs["fork_feat"] = True  # the authors' dense-task switch (TransXNet)
    args.authors_kwargs = json.dumps(kwargs)
    model = vs_authors.build_authors_model(args)
    x, labels = _random_batch(args)
    if args.mode == "train":
        return model, vs_authors.torch_training_step(model, x, labels, args.threads)
    model.eval()
    xt = torch.from_numpy(x)

    def step():
        with torch.no_grad():
            model(xt)
    return model, step


def _time_fast_ops():
    """Paddle's profiler records a custom op's backward (``Global_CustomOpGradNode``) but not its
    eager forward: time the fast kernels' forward calls here. Returns ``{name: [calls, seconds]}``."""
    from ppvision_hybrid.layers import activation, depthwise, fast_ops
    totals = {}

    def timed_op(name, *args):
        t0 = time.perf_counter()
        out = fast_ops.run_fast_op(name, *args)
        entry = totals.setdefault(f"{name} (fast kernel, forward)", [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - t0
        return out
    for module in (activation, depthwise):
        module.run_fast_op = timed_op
    return totals


def paddle_op_table(step, steps):
    """``[(name, calls per step, ms per step)]`` from paddle.profiler over ``steps`` steps."""
    import paddle.profiler as profiler
    from paddle.profiler.profiler_statistic import StatisticData
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], scheduler=(1, steps + 1),
                             on_trace_ready=lambda p: None)
    prof.start()
    step()  # the scheduler's first step is not recorded
    prof.step()
    fast = _time_fast_ops()
    for _ in range(steps):
        step()
        prof.step()
    prof.stop()
    data = StatisticData(prof.profiler_result.get_data(), prof.profiler_result.get_extra_info())
    return ([(name, item.call / steps, item.cpu_time / steps / 1e6) for name, item in data.event_summary.items.items()]
            + [(name, calls / steps, seconds / steps * 1e3) for name, (calls, seconds) in fast.items()])


def torch_op_table(step, steps):
    import torch
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return [(e.key, e.count / steps, e.self_cpu_time_total / steps / 1e3) for e in prof.key_averages()
            if e.self_cpu_time_total > 0]


class FastSwap:
    """Swaps a Paddle model's depthwise convs (``nn.Conv2D`` or ``layers.DepthwiseConv2D``) and
    GELUs (``nn.GELU`` or ``layers.GELU``), the ``F.conv2d`` / ``F.gelu`` calls of its family
    module and TransXNet's ``resize_relative_position`` between Paddle's standard layers and the
    fast CPU kernels of ppvision_hybrid.layers (a run-time projection for models that do not use
    the kernels yet; a model that calls ``layers.depthwise_conv2d`` / ``layers.gelu`` itself keeps
    them in both forms, so compare such a model with a checkout of an earlier commit instead)."""

    def __init__(self, model):
        import paddle.nn as nn
        import paddle.nn.functional as F
        from ppvision_hybrid import layers
        self.nn, self.F, self.layers = nn, F, layers
        self.convs = [m for m in model.sublayers() if type(m) in (nn.Conv2D, layers.DepthwiseConv2D)
                      and m._groups > 1 and m._groups == m._in_channels == m._out_channels]
        self.gelus = [m for m in model.sublayers() if type(m) in (nn.GELU, layers.GELU)]
        self.module = sys.modules[type(model).__module__]
        fast = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
        fast.conv2d, fast.gelu = self._conv2d, layers.gelu
        self.fast_functional = fast
        self.resize = getattr(self.module, "resize_relative_position", None)

    def _conv2d(self, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, data_format="NCHW", name=None):
        if groups > 1 and groups == weight.shape[0] == x.shape[1] and weight.shape[1] == 1:
            return self.layers.depthwise_conv2d(x, weight, bias, stride, padding, dilation, data_format)
        return self.F.conv2d(x, weight, bias, stride, padding, dilation, groups, data_format)

    def set(self, fast):
        for m in self.convs:
            m.__class__ = self.layers.DepthwiseConv2D if fast else self.nn.Conv2D
        for m in self.gelus:
            m.__class__ = self.layers.GELU if fast else self.nn.GELU
        if getattr(self.module, "F", None) in (self.F, self.fast_functional):
            self.module.F = self.fast_functional if fast else self.F
        if self.resize is not None:  # same arithmetic, bitwise (tests/test_fast_ops.py)
            self.module.resize_relative_position = self.layers.bicubic_resize if fast else self.resize


def compare_fast(model, step, pairs):
    swap = FastSwap(model)
    print(f"swapping {len(swap.convs)} depthwise convs, {len(swap.gelus)} GELUs and {swap.module.__name__}.F"
          + (" and its resize_relative_position" if swap.resize else ""))
    results = {False: ([], []), True: ([], [])}
    for fast in (False, True):
        swap.set(fast)
        step()
    for i in range(pairs):
        for fast in ((False, True) if i % 2 == 0 else (True, False)):
            swap.set(fast)
            wall, cpu = timed(step, 1)
            results[fast][0].append(wall[0])
            results[fast][1].append(cpu[0])
        print(f"pair {i + 1}/{pairs}: standard {results[False][0][-1]:.0f} ms (CPU {results[False][1][-1]:.0f}), "
              f"fast {results[True][0][-1]:.0f} ms (CPU {results[True][1][-1]:.0f})", flush=True)
    std_wall, fast_wall = _median(results[False][0]), _median(results[True][0])
    std_cpu, fast_cpu = _median(results[False][1]), _median(results[True][1])
    print(f"median: standard {std_wall:.0f} ms (CPU {std_cpu:.0f}), fast {fast_wall:.0f} ms (CPU {fast_cpu:.0f}); "
          f"ratio {fast_wall / std_wall:.2f} (CPU {fast_cpu / std_cpu:.2f})")
    swap.set(False)
    return dict(standard_ms=results[False][0], fast_ms=results[True][0], standard_cpu_ms=results[False][1],
                fast_cpu_ms=results[True][1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("paddle", "torch"), default="paddle")
    parser.add_argument("--model", required=True, help="our registered model name (a label for torch)")
    parser.add_argument("--ours-kwargs", default="{}")
    parser.add_argument("--authors-path", default="")
    parser.add_argument("--authors-build", default="")
    parser.add_argument("--authors-kwargs", default="{}")
    parser.add_argument("--mode", choices=("infer", "train"), default="infer")
    parser.add_argument("--batch", type=int, default=None, help="default 1 (infer) / 8 (train)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--features-only", action="store_true", help="the backbone pyramid (dense tasks)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2, help="timed steps, then profiled steps")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--fast", action="store_true", help="run with the fast kernels swapped in (projection)")
    parser.add_argument("--compare-fast", type=int, default=0, metavar="PAIRS",
                        help="time the standard and the swapped-in fast kernels alternately, PAIRS each")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    args.batch = args.batch or (8 if args.mode == "train" else 1)
    for key, value in vs_authors._thread_env(args.threads).items():  # before a framework loads
        os.environ.setdefault(key, value)
    # glibc read its MALLOC_* variables when this process started: set the same in place, both sides
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from ppvision_hybrid.cpu_memory import keep_freed_memory
    keep_freed_memory(environ={})
    if args.framework == "paddle":
        model, step = paddle_step(args)
    else:
        model, step = torch_step(args)
    if args.compare_fast:
        return compare_fast(model, step, args.compare_fast)
    if args.fast:
        FastSwap(model).set(True)
    for _ in range(args.warmup):
        step()
    wall, cpu = timed(step, args.steps)
    table = (paddle_op_table if args.framework == "paddle" else torch_op_table)(step, args.steps)
    table.sort(key=lambda row: -row[2])
    total = sum(row[2] for row in table)
    shape = "x".join(str(s) for s in _input_shape(args))
    print(f"{args.framework} {args.model} {args.mode} {shape}, {args.threads} threads: step {_median(wall):.1f} ms "
          f"wall (CPU {_median(cpu):.1f} ms); steps {', '.join(f'{w:.0f}' for w in wall)} ms")
    print(f"\n| op | calls / step | ms / step | share of op time ({total:.0f} ms) |\n|---|---|---|---|")
    for name, calls, ms in table[:args.top]:
        print(f"| {name} | {calls:.0f} | {ms:.1f} | {100 * ms / total:.1f}% |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(wall_ms=wall, cpu_ms=cpu, ops=table, args=vars(args)), f, indent=1)
    return table


if __name__ == "__main__":
    main()
