"""Window partition / reverse and padding that survive ``paddle.jit.to_static``.

All shape arithmetic uses ``x.shape`` entries, which are Python ints in dygraph and symbolic
values under ``to_static`` (dynamic batch, height and width), so one exported graph serves
every input size.

Eager CPU calls partition and reverse with one ``paddle.gather`` of ``ws * C``-float rows
instead of the 6-D transpose (the same values, copied): Paddle 3.3.1's CPU transpose of a 6-D
tensor is far slower (docs/benchmarks.md, "Session 9"). Saved graphs keep the transpose.
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from ..paddle_compat import pad_arg
from .fast_ops import eager_execution


def pad_to_multiple(x, multiple_h: int, multiple_w: int = None, data_format: str = "NHWC"):
    """Zero-pad the spatial dims right/bottom up to multiples; returns (x, pad_h, pad_w)."""
    multiple_w = multiple_h if multiple_w is None else multiple_w
    if data_format == "NHWC":
        H, W = x.shape[1], x.shape[2]
    else:
        H, W = x.shape[2], x.shape[3]
    pad_h = (multiple_h - H % multiple_h) % multiple_h
    pad_w = (multiple_w - W % multiple_w) % multiple_w
    if data_format == "NHWC":
        return pad_nhwc(x, 0, pad_w, 0, pad_h), pad_h, pad_w
    # F.pad on 4-D input pads the last two spatial dims: [left, right, top, bottom].
    # pad_arg: a symbolic pad list becomes a tensor under Paddle 2.6's legacy to_static.
    x = F.pad(x, pad_arg([0, pad_w, 0, pad_h]), data_format=data_format)
    return x, pad_h, pad_w


def _static_dims(x):
    """``x.shape`` with unknown (-1) entries replaced by their run-time values."""
    shape = x.shape
    return [d if isinstance(d, int) and d >= 0 else paddle.shape(x)[i] for i, d in enumerate(shape)]


def pad_nhwc(x, pad_left=0, pad_right=0, pad_top=0, pad_bottom=0):
    """Zero-pad the H and W dims of an NHWC tensor (``F.pad(..., data_format="NHWC")`` semantics).

    The pad is built from zero blocks and ``concat``: Paddle 3.3.1's oneDNN ``pad3d`` kernel
    ignores ``data_format="NHWC"``/``"NDHWC"`` and pads W and C instead of H and W, so a
    predictor with oneDNN on would return wrong shapes or fail (``onednn_to_paddle_layout raises
    dnnl::error``). Pad amounts may be Python ints or symbolic sizes (dynamic H/W under
    ``to_static``).
    """
    B, H, W, C = _static_dims(x)
    parts = [x]
    if not (isinstance(pad_left, int) and pad_left == 0):
        parts.insert(0, paddle.zeros([B, H, pad_left, C], x.dtype))
    if not (isinstance(pad_right, int) and pad_right == 0):
        parts.append(paddle.zeros([B, H, pad_right, C], x.dtype))
    x = paddle.concat(parts, axis=2) if len(parts) > 1 else x
    W = _static_dims(x)[2]
    parts = [x]
    if not (isinstance(pad_top, int) and pad_top == 0):
        parts.insert(0, paddle.zeros([B, pad_top, W, C], x.dtype))
    if not (isinstance(pad_bottom, int) and pad_bottom == 0):
        parts.append(paddle.zeros([B, pad_bottom, W, C], x.dtype))
    return paddle.concat(parts, axis=1) if len(parts) > 1 else x


_ROW_ORDERS = {}


def _row_order(windows_h, window_size, windows_w, inverse):
    """For a map viewed as rows of ``window_size * C`` floats (row ``y * windows_w + j`` is row
    ``y`` of window column ``j``): the rows in window order (``inverse``: back to map order)."""
    key = (windows_h, window_size, windows_w, inverse)
    if key not in _ROW_ORDERS:
        order = np.arange(windows_h * window_size * windows_w).reshape(windows_h, window_size, windows_w)
        order = order.transpose(0, 2, 1).reshape(-1)
        _ROW_ORDERS[key] = paddle.to_tensor(np.argsort(order) if inverse else order, dtype="int64",
                                            place=paddle.CPUPlace())
    return _ROW_ORDERS[key]


def _gather_rows(x):
    return eager_execution() and x.place.is_cpu_place()


def window_partition(x, window_size: int):
    """[B, H, W, C] (H, W multiples of window) -> [B * nW, window_size * window_size, C].

    The transposed map is merged with ``flatten``, not ``reshape``: Paddle 3.3.1's
    ``operator_reshape_onednn_fuse_pass`` folds a constant-shape reshape into the transpose
    before it and keeps the transpose's output shape in the graph, so the op after it (a Linear)
    fails to build with a dynamic batch (docs/deploy.md)."""
    B, H, W, C = x.shape
    if _gather_rows(x):
        rows = x.reshape([B, H * (W // window_size), window_size * C])
        rows = paddle.gather(rows, _row_order(H // window_size, window_size, W // window_size, False), axis=1)
        return rows.reshape([-1, window_size * window_size, C])
    x = x.reshape([B, H // window_size, window_size, W // window_size, window_size, C])
    return x.transpose([0, 1, 3, 2, 4, 5]).flatten(3, 4).flatten(0, 2)


def window_reverse(windows, window_size: int, H: int, W: int):
    """Inverse of :func:`window_partition`: [B * nW, ws*ws, C] -> [B, H, W, C]."""
    C = windows.shape[-1]
    if _gather_rows(windows):
        rows = windows.reshape([-1, H * (W // window_size), window_size * C])
        rows = paddle.gather(rows, _row_order(H // window_size, window_size, W // window_size, True), axis=1)
        return rows.reshape([-1, H, W, C])
    x = windows.reshape([-1, H // window_size, W // window_size, window_size, window_size, C])
    return x.transpose([0, 1, 3, 2, 4, 5]).flatten(3, 4).flatten(1, 2)
