"""Resampling written as matrix products, for graphs with dynamic sizes.

``F.adaptive_avg_pool2d`` to a fixed output size needs a static input size in paddle2onnx
("Adaptive only support static input shape"); the same average as two small matrix products
converts and runs anywhere, with the input size symbolic.
"""
import paddle


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
    return paddle.matmul(paddle.matmul(rows, x), cols, transpose_y=True)
