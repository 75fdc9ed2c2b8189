"""Window partition / reverse and padding that survive ``paddle.jit.to_static``.

All shape arithmetic uses ``x.shape`` entries, which are Python ints in dygraph and symbolic
values under ``to_static`` (dynamic batch, height and width), so one exported graph serves
every input size.
"""
import paddle.nn.functional as F


def pad_to_multiple(x, multiple_h: int, multiple_w: int = None, data_format: str = "NHWC"):
    """Zero-pad the spatial dims right/bottom up to multiples; returns (x, pad_h, pad_w)."""
    multiple_w = multiple_h if multiple_w is None else multiple_w
    if data_format == "NHWC":
        H, W = x.shape[1], x.shape[2]
    else:
        H, W = x.shape[2], x.shape[3]
    pad_h = (multiple_h - H % multiple_h) % multiple_h
    pad_w = (multiple_w - W % multiple_w) % multiple_w
    # F.pad on 4-D input pads the last two spatial dims: [left, right, top, bottom].
    x = F.pad(x, [0, pad_w, 0, pad_h], data_format=data_format)
    return x, pad_h, pad_w


def window_partition(x, window_size: int):
    """[B, H, W, C] (H, W multiples of window) -> [B * nW, window_size * window_size, C]."""
    B, H, W, C = x.shape
    x = x.reshape([B, H // window_size, window_size, W // window_size, window_size, C])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, window_size * window_size, C])


def window_reverse(windows, window_size: int, H: int, W: int):
    """Inverse of :func:`window_partition`: [B * nW, ws*ws, C] -> [B, H, W, C]."""
    C = windows.shape[-1]
    x = windows.reshape([-1, H // window_size, W // window_size, window_size, window_size, C])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, H, W, C])
