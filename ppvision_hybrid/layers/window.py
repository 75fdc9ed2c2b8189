"""Window partition / reverse and padding that survive ``paddle.jit.to_static``.

All shape arithmetic uses ``x.shape`` entries, which are Python ints in dygraph and symbolic
values under ``to_static`` (dynamic batch, height and width), so one exported graph serves
every input size.
"""
import paddle
import paddle.nn.functional as F

from ..paddle_compat import pad_arg


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


def window_partition(x, window_size: int):
    """[B, H, W, C] (H, W multiples of window) -> [B * nW, window_size * window_size, C].

    The transposed map is merged with ``flatten``, not ``reshape``: Paddle 3.3.1's
    ``operator_reshape_onednn_fuse_pass`` folds a constant-shape reshape into the transpose
    before it and keeps the transpose's output shape in the graph, so the op after it (a Linear)
    fails to build with a dynamic batch (docs/deploy.md)."""
    B, H, W, C = x.shape
    x = x.reshape([B, H // window_size, window_size, W // window_size, window_size, C])
    return x.transpose([0, 1, 3, 2, 4, 5]).flatten(3, 4).flatten(0, 2)


def window_reverse(windows, window_size: int, H: int, W: int):
    """Inverse of :func:`window_partition`: [B * nW, ws*ws, C] -> [B, H, W, C]."""
    C = windows.shape[-1]
    x = windows.reshape([-1, H // window_size, W // window_size, window_size, window_size, C])
    return x.transpose([0, 1, 3, 2, 4, 5]).flatten(3, 4).flatten(1, 2)
