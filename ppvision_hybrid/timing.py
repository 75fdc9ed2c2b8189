"""The one wall-clock timer of the project (tools/benchmark.py, the benchmarks/ scripts,
``inference.time_predictor`` and predict_cls.py's ``--benchmark`` all use it).

Standard library only: benchmarks/vs_authors.py imports it in the authors' interpreters, which
may have no paddle (``import ppvision_hybrid.timing`` imports no paddle: the package is lazy).
"""
import time

__all__ = ["time_calls"]


def time_calls(fn, warmup, repeats, max_seconds=None):
    """Milliseconds of up to ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, sorted
    (stopping early once ``max_seconds`` of timed calls have passed)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    return sorted(times)
