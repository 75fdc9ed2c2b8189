"""Resampling that runs in every graph: adaptive average pooling as matrix products, and bicubic
resizing from gathers and element-wise ops (with a fast CPU kernel in eager mode).

``F.adaptive_avg_pool2d`` to a fixed output size needs a static input size in paddle2onnx
("Adaptive only support static input shape"); the same average as two small matrix products
converts and runs anywhere, with the input size symbolic.
"""
import numpy as np
import paddle

from .contraction import matmul_any_contraction
from .fast_ops import autocast_enabled, eager_execution, load_fast_ops, run_fast_op


def adaptive_pool_matrix(size, out):
    """[out, size] rows averaging ``[floor(i*size/out), ceil((i+1)*size/out))`` (the
    adaptive_avg_pool rule; for size < out cells are replicated). ``size`` may be symbolic."""
    if not isinstance(size, int):  # a traced size (int32 under Paddle 2.6); the index math is int64
        size = paddle.cast(size, "int64")
    i = paddle.arange(out, dtype="int64")
    start = (i * size) // out
    end = ((i + 1) * size + out - 1) // out
    pos = paddle.arange(size, dtype="int64")
    m = ((pos.unsqueeze(0) >= start.unsqueeze(1)) & (pos.unsqueeze(0) < end.unsqueeze(1))).astype("float32")
    return m / m.sum(axis=1, keepdim=True)


def floor_with_fraction(x):
    """``(floor(x)`` as int64, ``x - floor(x))`` for a float tensor, with no ``floor`` op: the cast
    truncates toward zero, and one is taken off where that rounded a negative value up.

    Exported graphs need this form: Paddle 3.3.1 runs ``floor`` (no oneDNN kernel) behind a
    layout conversion that shares its input's memory, and its ``inplace_pass`` then floors that
    memory in place although ``x`` is read again for the fraction (which silently becomes 0;
    docs/deploy.md). A cast cannot run in place (its dtype changes)."""
    truncated = x.astype("int64")
    floor = truncated - (truncated.astype(x.dtype) > x).astype("int64")
    return floor, x - floor.astype(x.dtype)


def _mean_row(matrix):
    """A ``[1, size]`` row of ``1 / size`` for a ``[rows, size]`` matrix (size may be traced)."""
    size = matrix.shape[1]
    if not (isinstance(size, int) and size > 0):
        size = paddle.shape(matrix)[1].astype(matrix.dtype)
    return paddle.full_like(matrix[:1], 1.0) / size


def adaptive_avg_pool2d_matmul(x, out, append_mean=False):
    """``F.adaptive_avg_pool2d(x, out)`` of an NCHW tensor as ``rows @ x @ cols^T`` (equal up to
    float summation order). With ``append_mean`` each matrix gets one more row averaging the
    whole axis, so the result is ``[N, C, out + 1, out + 1]`` with the global mean at
    ``[..., out, out]`` (two results for the price of one)."""
    rows = adaptive_pool_matrix(x.shape[2], out)  # [out, H]
    cols = adaptive_pool_matrix(x.shape[3], out)  # [out, W]
    if append_mean:
        rows, cols = [paddle.concat([m, _mean_row(m)]) for m in (rows, cols)]
    # H or W may be 1 at run time (a 1x1 map): see matmul_any_contraction
    return matmul_any_contraction(matmul_any_contraction(rows, x), cols, transpose_y=True)


def _bicubic_weights(x):
    """Cubic-convolution coefficients (Keys 1981, A = -0.75, as PyTorch's and Paddle's 'bicubic')
    of the taps at offsets -1, 0, 1, 2 from a fractional position ``x`` in [0, 1)."""
    a = -0.75
    x1 = x + 1.0
    x2 = 1.0 - x
    x3 = 2.0 - x
    w0 = ((a * x1 - 5.0 * a) * x1 + 8.0 * a) * x1 - 4.0 * a
    w1 = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    w2 = ((a + 2.0) * x2 - (a + 3.0)) * x2 * x2 + 1.0
    w3 = ((a * x3 - 5.0 * a) * x3 + 8.0 * a) * x3 - 4.0 * a
    return w0, w1, w2, w3


def _bicubic_axis(t, out_size, axis):
    """Bicubic resampling of ``t`` along ``axis`` (align_corners=False, borders clamped) from
    gathers and element-wise ops; ``out_size`` may be symbolic under ``to_static``."""
    in_size = t.shape[axis]
    if isinstance(out_size, int):
        scale = float(np.float32(in_size) / np.float32(out_size))  # float32, as PyTorch computes it
    else:
        scale = float(in_size) / paddle.cast(out_size, "float32")
    src = (paddle.arange(out_size, dtype="float32") + 0.5) * scale - 0.5
    base, frac = floor_with_fraction(src)  # no floor op: see floor_with_fraction
    weights = _bicubic_weights(frac)
    shape = [1] * t.ndim
    shape[axis] = -1
    out = None
    for offset, w in zip((-1, 0, 1, 2), weights):
        term = paddle.index_select(t, paddle.clip(base + offset, 0, in_size - 1), axis=axis) * w.reshape(shape)
        out = term if out is None else out + term
    return out


def bicubic_resize(x, out_h, out_w):
    """Resize the last two axes of a 4-D ``x`` to ``(out_h, out_w)`` bicubically, as PyTorch's
    ``F.interpolate(x, (out_h, out_w), mode="bicubic", align_corners=False)`` (Paddle's own
    bicubic differs from it by up to ~1e-3). Eager float32 CPU calls with int sizes run the fast
    kernel of :mod:`ppvision_hybrid.layers.fast_ops` (bitwise the same forward result, one pass
    instead of eight full-size intermediates); elsewhere gathers and element-wise ops, which run
    with symbolic sizes in saved graphs and every backend."""
    if (isinstance(out_h, int) and isinstance(out_w, int) and eager_execution() and x.ndim == 4
            and x.dtype == paddle.float32 and x.place.is_cpu_place() and not autocast_enabled()
            and "ppvh_bicubic_resize" in (load_fast_ops() or ())):
        return run_fast_op("ppvh_bicubic_resize", x, out_h, out_w)[0]
    return _bicubic_axis(_bicubic_axis(x, out_h, axis=2), out_w, axis=3)
