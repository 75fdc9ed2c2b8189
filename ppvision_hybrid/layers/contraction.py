"""Matrix products whose contracted axis may have length 1 when a saved graph runs.

Paddle 3.3.1's oneDNN matmul kernel (what a default ``paddle.inference.Config`` runs on CPU)
returns uninitialised memory for a contraction of length 1, an outer product: NaN or values up
to 1e37 that change from call to call, for every transpose flag, 2-D to 4-D operands, static or
dynamic shapes (length 2 and up is right). Token sums over a 1x1 map -- the last stage at a
32x32 input -- are such contractions (docs/deploy.md).
"""
import paddle


def _append_zero(x, axis):
    """``x`` with one slice of zeros appended along ``axis`` (negative)."""
    axis += x.ndim
    zero = paddle.zeros_like(paddle.slice(x, axes=[axis], starts=[0], ends=[1]))
    return paddle.concat([x, zero], axis=axis)


@paddle.jit.not_to_static  # plain Python on the traced shapes: -1 must stay an int for reshape
def static_token_count(x):
    """``H * W`` of an NCHW ``x`` where both are static (eager calls, fixed-size exports), else -1:
    the token axis for a ``reshape``, so that a traced graph keeps the length static and
    :func:`matmul_any_contraction` knows when it needs no padding."""
    h, w = x.shape[2], x.shape[3]
    return h * w if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else -1


def matmul_any_contraction(x, y, transpose_x=False, transpose_y=False):
    """``paddle.matmul(x, y, transpose_x, transpose_y)`` that stays right in exported graphs when
    the contracted length can be 1 at run time.

    Eager calls, and traced ones whose contracted length is a static int of 2 or more, are that
    matmul. Otherwise (a symbolic length, or a static 1) both operands get one zero appended along
    the contracted axis, which adds nothing to the sum and keeps oneDNN's matmul off length 1."""
    x_axis = -2 if transpose_x else -1
    length = x.shape[x_axis]
    if paddle.in_dynamic_mode() or (isinstance(length, int) and length > 1):
        return paddle.matmul(x, y, transpose_x=transpose_x, transpose_y=transpose_y)
    return paddle.matmul(_append_zero(x, x_axis), _append_zero(y, -1 if transpose_y else -2),
                         transpose_x=transpose_x, transpose_y=transpose_y)
