"""Swin-style relative position index (Liu et al. 2021, Sec. 3.2)."""
import numpy as np


def relative_position_index(window_h: int, window_w: int = None) -> np.ndarray:
    """[Wh*Ww, Wh*Ww] int64 index into a (2Wh-1)(2Ww-1) bias table."""
    window_w = window_h if window_w is None else window_w
    coords = np.stack(np.meshgrid(np.arange(window_h), np.arange(window_w), indexing="ij"))
    coords = coords.reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
    rel[:, :, 0] += window_h - 1
    rel[:, :, 1] += window_w - 1
    rel[:, :, 0] *= 2 * window_w - 1
    return rel.sum(-1).astype("int64")
