"""Eager inference of one checkout's model, before and after ``re_parameterize()``.

    OMP_NUM_THREADS=1 python benchmarks/eager_reparam.py CHECKOUT MODEL

Imports ``ppvision_hybrid`` from CHECKOUT (a worktree of any commit), builds MODEL in eval mode
and times it under ``paddle.no_grad`` at 224x224: batch 1 (median of 5 calls) and batch 8 (median
of 2), each after one warm-up call, then the same after ``model.re_parameterize()``. Prints one
JSON line: per setting ``[CPU ms, wall ms]`` per call (CPU time of the process: on a shared host
it moves far less than the wall time at one thread). Run it for two checkouts alternately
(A B, B A, ...) to compare them (docs/benchmarks.md, "Session 11").
"""
import json
import sys
import time


def main(checkout, name):
    sys.path.insert(0, checkout)
    import paddle
    import ppvision_hybrid
    paddle.set_device("cpu")
    paddle.seed(0)
    model = ppvision_hybrid.create_model(name)
    model.eval()
    result = {"model": name, "checkout": checkout}

    def time_calls(tag, batch, repeats):
        x = paddle.randn([batch, 3, 224, 224])
        cpu, wall = [], []
        with paddle.no_grad():
            model(x)
            for _ in range(repeats):
                c0, w0 = time.process_time(), time.perf_counter()
                model(x)
                cpu.append((time.process_time() - c0) * 1e3)
                wall.append((time.perf_counter() - w0) * 1e3)
        result[tag] = [round(sorted(cpu)[len(cpu) // 2], 1), round(sorted(wall)[len(wall) // 2], 1)]

    time_calls("b1", 1, 5)
    time_calls("b8", 8, 2)
    model.re_parameterize()
    time_calls("b1 reparam", 1, 5)
    time_calls("b8 reparam", 8, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/eager_reparam.py CHECKOUT MODEL")
    main(*sys.argv[1:])
