"""Focal Transformer (Yang et al., NeurIPS 2021, "Focal Self-attention for Local-Global
Interactions in Vision Transformers"): FocalTransformer_T/S/B and the conv-embedding variants.

What the model computes (paper Sec. 3, Table 1; details the paper omits follow the authors'
public classification code):

* a 4x4 stride-4 patch embedding (conv variant: 7x7 stride 4, padding 2) + LayerNorm, four
  stages of Focal Transformer blocks, 2x2 stride-2 patch merging (conv variant: 3x3 stride 2)
  + LayerNorm between stages, final LayerNorm, average pool, linear classifier;
* focal self-attention (Sec. 3.2) on 7x7 query windows with two levels. Every query window
  attends to
    1. its own 49 tokens (Swin relative position table),
    2. the fine-grained ring around it: the key/value map rolled by +-expand (3) in both
       directions, wrapping at the map border, 4 x 33 = 132 tokens with a free bias table
       ``[1, heads, 49, 132]`` (stages whose built map equals the window have no ring),
    3. coarse tokens: each 7x7 sub-window pooled by a learned Linear(49 -> 1) shared over
       channels, embedded with the same qkv projection, and the ``s_r x s_r`` pooled tokens
       around the query window (s_r = focal window 7/5/3/1 per stage; zero-padded beyond the
       border where the logit gets -100), with a ``[heads, (7 + s_r - 1)^2]`` bias table.

Any input size. The authors' model only accepts the size it was built for. Here the *structure*
(window per stage, whether a stage has the neighbour ring) is fixed at construction from
``img_size`` exactly as the authors do, and the forward pass runs at any size: the feature map
is zero-padded (after norm1, like the authors) to a multiple of the window, all gather indices and
the border mask are computed from the runtime shape (``x.shape``, so one exported graph serves every
height/width), and no parameter or buffer depends on the image size. At the built size the
output is the authors' function; at other sizes it is the same formula applied to the padded map.

Speed: instead of the authors' 8 rolls + 10 window partitions (6-D transposes, slow in Paddle)
per block, one gather builds the windows, one gather collects every key/value of every window
(window tokens, rolled ring and pooled tokens, in the authors' order) and one gather undoes the
windowing and crops the padding. The attention is evaluated in a ``[B, heads, windows, ...]``
layout so only one 5-D transpose (qkv) and one 4-D transpose (output) remain per block.

Detection setting (paper Sec. 4.2): ``detection_focal=True`` uses focal windows (15, 13, 9, 7)
at run time, with the pooled-token bias tables bilinearly up-sampled from the stored
(classification-sized) tables, so classification checkpoints load unchanged.
"""
import functools

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..layers import GELU, DropPath, Mlp, broadcast_add, init_weights_vit, pad_nhwc, trunc_normal_, zeros_
from ..layers import relative_position_index as swin_relative_position_index
from ..layers.heads import project_heads
from ..paddle_compat import in_legacy_static_mode, pad_arg
from ..registry import register_converter
from .base import HybridBackbone, StageNorms, Variant, drop_path_rates, reference_counts, register_variants

__all__ = [
    "FocalTransformer", "FocalTransformer_T", "FocalTransformer_S", "FocalTransformer_B",
    "FocalTransformer_T_conv", "FocalTransformer_S_conv", "FocalTransformer_B_conv",
    "convert_official_state_dict",
]


PAPER = "Focal Self-attention for Local-Global Interactions in Vision Transformers (NeurIPS 2021)"
DETECTION_FOCAL_WINDOWS = (15, 13, 9, 7)
_MASK_VALUE = -100.0  # the authors' additive mask for zero-padded pooled tokens


# ---------------------------------------------------------------------------------------------
# Index tables that depend only on the window/focal geometry (never on the image size)
# ---------------------------------------------------------------------------------------------
def pooled_relative_position_index(window: int, focal_window: int) -> np.ndarray:
    """[window^2, focal_window^2] index into a (window + focal_window - 1)^2 table: the relative
    offset between a query token's position inside its window and a pooled token's position in the
    focal region, as the authors define it (Sec. 3.2, Eq. 3 bias B)."""
    q = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    k = np.stack(np.meshgrid(np.arange(focal_window), np.arange(focal_window),
                             indexing="ij")).reshape(2, -1)
    rel = (q[:, :, None] - k[:, None, :]).transpose(1, 2, 0) + (focal_window - 1)
    rel[:, :, 0] *= window + focal_window - 1
    return rel.sum(-1).astype("int64")


def local_key_offsets(window: int, expand: int) -> np.ndarray:
    """[n_keys, 2] (row, col) offsets, relative to a window's top-left token, of the fine-grained
    keys of that window in the authors' order: the window's own tokens (raster order), then the
    valid tokens of the map rolled towards top-left, top-right, bottom-left, bottom-right by
    ``expand`` (each in raster order). 49 + 4*33 = 181 keys for window 7, expand 3."""
    r, c = np.meshgrid(np.arange(window), np.arange(window), indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)
    offsets = [np.stack([r, c], 1)]
    if expand > 0:
        lo, hi = expand, window - expand  # tokens r < hi and c < hi of the top-left roll repeat the window
        rolls = [  # (row shift, col shift, valid positions of the rolled window)
            (expand, expand, (r >= hi) | (c >= hi)),
            (expand, -expand, (r >= hi) | (c < lo)),
            (-expand, expand, (r < lo) | (c >= hi)),
            (-expand, -expand, (r < lo) | (c < lo)),
        ]
        for dr, dc, valid in rolls:
            offsets.append(np.stack([r[valid] + dr, c[valid] + dc], 1))
    return np.concatenate(offsets, 0).astype("int64")


def _stage_geometry(height, width, window, local_offsets, focal_window, xp=paddle):
    """Gather indices for one stage (shared by its blocks), built from ``arange``s of ``xp``:
    ``paddle`` for the symbolic ``height``/``width`` of a ``to_static`` trace, ``numpy`` for
    static sizes (:func:`static_stage_geometry`).

    Returns dict with
      part: [Hp*Wp] raster position (row in ``[H*W, C]`` tokens) of each padded-map token in
            window order (window partition); padding positions point at row H*W, where the
            block appends a zero token -- the window padding without a pad op or 4-D reshapes;
      padded: False when the map is known to need no padding (static sizes);
      keys: [nW * n_keys] position of every key of every window in the source
            ``concat(window-ordered tokens (Hp*Wp), zero-padded pooled map (Hq*Wq))``;
      mask: [nW, 1, n_keys] additive mask (-100 on zero-padded pooled tokens), None when
            the focal window is 1 (nothing is ever padded);
      unpart: [H*W] window-ordered position of each unpadded map token (reverse + crop);
      n_wh, n_ww.

    Every integer term is multiplied by its stride before the terms are summed, never after: on
    an int64 sum, Paddle 3.3.1's ``operator_scale_onednn_fuse_pass`` folds the multiplication
    into the add as an output scale that the int64 kernel ignores (docs/deploy.md).
    """
    if xp is paddle and in_legacy_static_mode():
        # Paddle 2.6 to_static: sizes are int32 Variables; the index math is int64
        height, width = paddle.cast(height, "int64"), paddle.cast(width, "int64")
    pad_h = (window - height % window) % window
    pad_w = (window - width % window) % window
    hp, wp = height + pad_h, width + pad_w
    n_wh, n_ww = hp // window, wp // window
    area = window * window
    concat = np.concatenate if xp is np else paddle.concat
    wi = xp.arange(n_wh, dtype="int64")
    wj = xp.arange(n_ww, dtype="int64")
    t = xp.arange(window, dtype="int64")

    # window partition: token (r, c) of window (wi, wj) sits at (wi*ws + r, wj*ws + c)
    rows = wi.reshape([-1, 1, 1, 1]) * window + t.reshape([1, 1, -1, 1])
    cols = wj.reshape([1, -1, 1, 1]) * window + t.reshape([1, 1, 1, -1])
    inside = ((rows < height) & (cols < width)).astype("int64")
    raster = wi.reshape([-1, 1, 1, 1]) * (window * width) + t.reshape([1, 1, -1, 1]) * width + cols
    part = (inside * raster + (1 - inside) * (height * width)).reshape([-1])  # raster = rows * width + cols
    padded = not (isinstance(pad_h, int) and isinstance(pad_w, int) and pad_h == 0 and pad_w == 0)

    # fine keys: offsets around each window, wrapping at the padded map border (torch.roll)
    off = local_offsets if xp is np else paddle.to_tensor(local_offsets)
    kr = (wi.reshape([-1, 1, 1]) * window + off[:, 0].reshape([1, 1, -1]) + hp) % hp
    kc = (wj.reshape([1, -1, 1]) * window + off[:, 1].reshape([1, 1, -1]) + wp) % wp
    local = (kr // window) * (n_ww * area) + (kc // window) * area + (kr % window) * window + kc % window
    # coarse keys: the focal_window^2 pooled tokens around each window in the zero-padded pooled
    # map (the authors' nn.Unfold with padding focal_window // 2); -100 where padded
    half = focal_window // 2
    hq, wq = n_wh + 2 * half, n_ww + 2 * half
    a = xp.arange(focal_window, dtype="int64")
    pr = wi.reshape([-1, 1, 1, 1]) + a.reshape([1, 1, -1, 1])  # row in the padded pooled map
    pc = wj.reshape([1, -1, 1, 1]) + a.reshape([1, 1, 1, -1])
    pooled = (hp * wp + wi.reshape([-1, 1, 1, 1]) * wq + a.reshape([1, 1, -1, 1]) * wq + pc  # pr * wq + pc
              ).reshape([n_wh, n_ww, -1])
    mask = None
    if focal_window > 1:
        inside = ((pr >= half) & (pr < hq - half)) & ((pc >= half) & (pc < wq - half))
        pool_mask = (1.0 - inside.astype("float32")) * _MASK_VALUE
        local_zero = xp.zeros([n_wh, n_ww, 1, local_offsets.shape[0]], "float32")
        mask = concat([local_zero, pool_mask.reshape([n_wh, n_ww, 1, -1])], axis=3)
        mask = mask.reshape([n_wh * n_ww, 1, -1])  # [nW, 1, n_keys]
    keys = concat([local, pooled], axis=2).reshape([-1])

    h = xp.arange(height, dtype="int64").reshape([-1, 1])
    w = xp.arange(width, dtype="int64").reshape([1, -1])
    unpart = ((h // window) * (n_ww * area) + (w // window) * area + (h % window) * window
              + w % window).reshape([-1])
    return dict(part=part, padded=padded, keys=keys, mask=mask, unpart=unpart, n_wh=n_wh, n_ww=n_ww)


@functools.lru_cache(maxsize=32)
def _static_stage_geometry_arrays(height, width, window, local_offsets, focal_window):
    return _stage_geometry(height, width, window, np.array(local_offsets, "int64"), focal_window, xp=np)


def static_stage_geometry(height, width, window, local_offsets, focal_window):
    """:func:`_stage_geometry` of static sizes: computed once per size with NumPy, returned as
    tensors (constants when traced)."""
    geo = _static_stage_geometry_arrays(height, width, window, tuple(map(tuple, local_offsets)), focal_window)
    return {k: paddle.to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in geo.items()}


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------
class FocalAttention(nn.Layer):
    """Focal self-attention of one block (Sec. 3.2) over window-ordered tokens.

    Parameter names follow the authors' ``WindowAttention`` so checkpoints map one to one.
    ``focal_window`` sizes the stored pooled-token table; ``runtime_focal_window`` (detection
    setting) bilinearly resizes it at run time.
    """

    def __init__(self, dim, num_heads, window, expand, focal_window, runtime_focal_window=None,
                 qkv_bias=True, qk_scale=None, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.dim, self.num_heads, self.window, self.expand = dim, num_heads, window, expand
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.focal_window = focal_window
        self.runtime_focal_window = runtime_focal_window or focal_window
        area = window * window

        self.relative_position_bias_table = self.create_parameter(
            [(2 * window - 1) ** 2, num_heads], default_initializer=zeros_)
        self.register_buffer("relative_position_index", paddle.to_tensor(
            swin_relative_position_index(window).reshape([-1])), persistable=False)
        self.num_local_keys = area
        if expand > 0:
            n_neighbours = 4 * area - 4 * (window - expand) ** 2
            self.num_local_keys += n_neighbours
            self.relative_position_bias_table_to_neighbors = self.create_parameter(
                [1, num_heads, area, n_neighbours], default_initializer=zeros_)
            trunc_normal_(self.relative_position_bias_table_to_neighbors, std=0.02)
        self.relative_position_bias_table_to_windows = nn.ParameterList([self.create_parameter(
            [num_heads, (window + focal_window - 1) ** 2], default_initializer=zeros_)])
        trunc_normal_(self.relative_position_bias_table_to_windows[0], std=0.02)
        self.register_buffer("pooled_position_index", paddle.to_tensor(pooled_relative_position_index(
            window, self.runtime_focal_window).reshape([-1])), persistable=False)

        self.qkv = nn.Linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop) if attn_drop > 0 else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def position_bias(self):
        """[heads, 1, window^2, n_keys]: the three tables laid out in key order."""
        heads, area = self.num_heads, self.window * self.window
        window_bias = paddle.gather(self.relative_position_bias_table, self.relative_position_index)
        parts = [window_bias.reshape([area, area, heads]).transpose([2, 0, 1])]
        if self.expand > 0:
            parts.append(self.relative_position_bias_table_to_neighbors[0])
        table = self.relative_position_bias_table_to_windows[0]
        if self.runtime_focal_window != self.focal_window:
            side, new_side = self.window + self.focal_window - 1, self.window + self.runtime_focal_window - 1
            table = F.interpolate(table.reshape([1, heads, side, side]), size=[new_side, new_side],
                                  mode="bilinear", align_corners=False).reshape([heads, -1])
        parts.append(paddle.gather(table, self.pooled_position_index, axis=1).reshape([heads, area, -1]))
        return paddle.concat(parts, axis=-1).unsqueeze(1)

    def forward(self, x_windows, pooled, geo):
        """x_windows: [B, Np, C] tokens in window order; pooled: [B, nWh, nWw, C] pooled
        sub-window tokens. Returns [B, H*W, C] (map order, padding cropped)."""
        B, n_tokens, C = x_windows.shape
        heads, hd, area = self.num_heads, self.head_dim, self.window * self.window
        n_wh, n_ww = geo["n_wh"], geo["n_ww"]
        n_windows = n_wh * n_ww

        q, k, v = project_heads(x_windows, self.qkv, heads)  # each [B, heads, Np, hd]
        q = q.reshape([B, heads, n_windows, area, hd])

        # pooled tokens -> k, v, zero-padded by focal_window // 2 around the pooled map
        half = self.runtime_focal_window // 2
        kv_pooled = self.qkv(pooled)[:, :, :, C:]
        kv_pooled = pad_nhwc(kv_pooled, half, half, half, half)
        kv_pooled = kv_pooled.reshape([B, -1, 2, heads, hd]).transpose([2, 0, 3, 1, 4])  # [2, B, heads, Nq, hd]
        # every key / value of every window: [B, heads, nW, Nk, hd]
        k, v = (paddle.gather(paddle.concat([t, t_pooled], axis=2), geo["keys"], axis=2)
                .reshape([B, heads, n_windows, -1, hd]) for t, t_pooled in ((k, kv_pooled[0]), (v, kv_pooled[1])))

        attn = paddle.matmul(q * self.scale, k, transpose_y=True)  # [B, heads, nW, area, Nk]
        # The bias and the border mask are summed first, at one image's score shape, and added to
        # the scores once, at full shape: one pass over the largest tensor of the block instead
        # of two (Paddle's eager add is slow when an operand broadcasts: layers/broadcast.py).
        full = [B, heads, n_windows, area, attn.shape[-1]]
        bias = self.position_bias().unsqueeze(0)  # [1, heads, 1, area, Nk]
        if geo["mask"] is not None:
            bias = broadcast_add(bias, geo["mask"].unsqueeze([0, 1]), [1] + full[1:])  # [1, heads, nW, area, Nk]
        attn = attn + bias.expand(full)
        attn = self.attn_drop(F.softmax(attn, axis=-1))
        out = paddle.matmul(attn, v).reshape([B, heads, n_tokens, hd])
        out = paddle.gather(out, geo["unpart"], axis=2).transpose([0, 2, 1, 3]).reshape([B, -1, C])
        return self.proj_drop(self.proj(out))

    def deploy_twin(self):
        return FocalAttentionDeploy(self)


class FocalAttentionDeploy(nn.Layer):
    """:class:`FocalAttention`'s inference form: the same ``forward`` with the position bias of
    every key computed once (the three tables gathered into key order, the pooled-token table
    resized for the detection setting), so no gather or ``interpolate`` of parameters runs per
    call or reaches the exported graph (Paddle 3.3.1's oneDNN cannot run an ``interpolate`` with
    an output size: "ConvertPirAttribute2RuntimeAttribute not support", docs/deploy.md)."""

    forward = FocalAttention.forward

    def __init__(self, attention):
        super().__init__()
        for name in ("dim", "num_heads", "window", "expand", "head_dim", "scale", "focal_window",
                     "runtime_focal_window"):
            setattr(self, name, getattr(attention, name))
        self.qkv, self.attn_drop = attention.qkv, attention.attn_drop
        self.proj, self.proj_drop = attention.proj, attention.proj_drop
        self.register_buffer("bias", attention.position_bias())

    def position_bias(self):
        return self.bias


class FocalTransformerBlock(nn.Layer):
    """Pre-norm block: x + DropPath(FocalAttention(LN(x))), x + DropPath(MLP(LN(x)))."""

    def __init__(self, dim, num_heads, window, expand, focal_window, runtime_focal_window=None,
                 mlp_ratio=4.0, qkv_bias=True, qk_scale=None, drop=0.0, attn_drop=0.0,
                 drop_path=0.0):
        super().__init__()
        self.window = window
        # The authors pool each sub-window with a Linear(window^2 -> 1) shared over channels.
        self.pool_layers = nn.LayerList([nn.Linear(window * window, 1)])
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-5)
        self.attn = FocalAttention(dim, num_heads, window, expand, focal_window, runtime_focal_window,
                                   qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=GELU, drop=drop)

    def forward(self, x, geo):
        """x: [B, H*W, C] tokens in raster order (the stage keeps its stream 3-D: every reshape
        is a copy in oneDNN, and Paddle Inference runs Linear+GELU in oneDNN only on 2-D/3-D)."""
        B, _, C = x.shape
        y = self.norm1(x)
        if geo["padded"]:  # the window padding: one zero token that padded positions gather
            y = paddle.concat([y, paddle.zeros_like(y[:, :1])], axis=1)
        y = paddle.gather(y, geo["part"], axis=1)  # [B, Np, C] window order
        area = self.window * self.window
        pool = self.pool_layers[0]
        pooled = paddle.matmul(pool.weight.T, y.reshape([B, -1, area, C])) + pool.bias
        pooled = pooled.reshape([B, geo["n_wh"], geo["n_ww"], C])
        x = x + self.drop_path(self.attn(y, pooled, geo))  # attn returns [B, H*W, C]
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Layer):
    """Conv patch embedding + LayerNorm (stem and between stages). The non-overlapping
    variant zero-pads right/bottom to a multiple of the stride so no pixel is dropped."""

    def __init__(self, in_chans, embed_dim, stride, kernel_size=None, padding=0):
        super().__init__()
        kernel_size = kernel_size or stride
        self.stride = stride
        self.pad_input = kernel_size == stride and padding == 0
        self.proj = nn.Conv2D(in_chans, embed_dim, kernel_size, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(embed_dim, epsilon=1e-5)

    def forward(self, x):
        """x: NCHW -> [B, H', W', C] (channels last)."""
        if self.pad_input:
            H, W = x.shape[2], x.shape[3]
            s = self.stride
            x = F.pad(x, pad_arg([0, (s - W % s) % s, 0, (s - H % s) % s]))
        return self.norm(self.proj(x).transpose([0, 2, 3, 1]))


class FocalStage(nn.Layer):
    def __init__(self, dim, depth, num_heads, window, expand, focal_window, runtime_focal_window,
                 drop_path, downsample, **block_kwargs):
        super().__init__()
        self.window, self.expand = window, expand
        self.runtime_focal_window = runtime_focal_window or focal_window
        self.local_offsets = local_key_offsets(window, expand)
        self.blocks = nn.LayerList([
            FocalTransformerBlock(dim, num_heads, window, expand, focal_window, runtime_focal_window,
                                  drop_path=drop_path[i], **block_kwargs) for i in range(depth)])
        self.downsample = downsample

    def forward(self, x):
        """x: [B, H, W, C] -> [B, H, W, C]."""
        batch, height, width, channels = x.shape
        if isinstance(height, int) and isinstance(width, int):
            geo = static_stage_geometry(height, width, self.window, self.local_offsets, self.runtime_focal_window)
        else:
            geo = _stage_geometry(height, width, self.window, self.local_offsets, self.runtime_focal_window)
        x = x.reshape([batch, -1, channels])
        for blk in self.blocks:
            x = blk(x, geo)
        return x.reshape([batch, height, width, channels])


class FocalTransformer(HybridBackbone):
    """Focal Transformer backbone/classifier.

    Args:
        img_size: the size the model is built for (int or (H, W)). Like the authors' code it
            decides, per stage, the window (``min(map, window_size)``) and whether the stage has
            the rolled neighbour ring (not when the built map fits in one window). Inputs of any
            size are accepted at run time.
        use_conv_embed: 7x7/4 stem and 3x3/2 downsampling (the ``_conv`` variants).
        focal_windows: pooled-region sizes per stage (7, 5, 3, 1), sizes the bias tables.
        detection_focal: False, True (the paper's detection setting (15, 13, 9, 7)) or a tuple of
            per-stage focal windows used at run time with bilinearly resized bias tables.
        features_only: return per-stage NCHW maps (each through its own LayerNorm, as Swin-style
            detection backbones do) instead of logits.
    """

    classifier_prefixes = ("head.",)
    no_weight_decay_keywords = ("relative_position_bias_table",)

    def __init__(self, img_size=224, in_chans=3, class_num=1000, embed_dim=96, depths=(2, 2, 6, 2),
                 num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4.0, qkv_bias=True, qk_scale=None,
                 drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1, focal_windows=(7, 5, 3, 1),
                 expand_sizes=(3, 3, 3, 3), use_conv_embed=False, detection_focal=False,
                 out_indices=(0, 1, 2, 3), features_only=False, **kwargs):
        if kwargs:
            raise TypeError(f"FocalTransformer got unexpected arguments: {sorted(kwargs)}")
        super().__init__(in_chans, class_num, out_indices, features_only, min_input_size=4)
        img_h, img_w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if detection_focal is True:
            detection_focal = DETECTION_FOCAL_WINDOWS
        runtime_windows = tuple(detection_focal) if detection_focal else tuple(focal_windows)
        if len(runtime_windows) != 4:
            raise ValueError(f"detection_focal needs 4 focal windows, got {runtime_windows}")
        self.num_layers = len(depths)
        dims = [int(embed_dim * 2 ** i) for i in range(self.num_layers)]
        self.num_features = dims[-1]
        self.feature_info = [dict(channels=d, stride=4 * 2 ** i) for i, d in enumerate(dims)]
        self.use_conv_embed = use_conv_embed

        if use_conv_embed:
            self.patch_embed = PatchEmbed(in_chans, embed_dim, 4, kernel_size=7, padding=2)
        else:
            self.patch_embed = PatchEmbed(in_chans, embed_dim, 4)
        self.pos_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        dpr = drop_path_rates(drop_path_rate, depths)
        self.layers = nn.LayerList()
        self.stage_windows = []
        for i in range(self.num_layers):
            res_h, res_w = img_h // 4 // 2 ** i, img_w // 4 // 2 ** i  # the authors' built map
            window, expand = window_size, expand_sizes[i]
            if min(res_h, res_w) <= window_size:
                window, expand = max(min(res_h, res_w), 1), 0
            self.stage_windows.append((window, expand))
            if i < self.num_layers - 1:
                if use_conv_embed:
                    down = PatchEmbed(dims[i], dims[i + 1], 2, kernel_size=3, padding=1)
                else:
                    down = PatchEmbed(dims[i], dims[i + 1], 2)
            else:
                down = None
            self.layers.append(FocalStage(
                dims[i], depths[i], num_heads[i], window, expand, focal_windows[i],
                runtime_windows[i], dpr[i], down,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate,
                attn_drop=attn_drop_rate))

        if features_only:
            self.out_norms = StageNorms(nn.LayerNorm, dims, self.out_indices)
        else:
            self.norm = nn.LayerNorm(self.num_features, epsilon=1e-5)
            self.head = self.classifier(class_num)
        self._init_weights()

    def _init_weights(self):
        # The authors: trunc-normal(0.02) for every Linear (the sub-window pooling included), zero
        # biases, LayerNorm (1, 0); convolutions keep the framework default.
        self.apply(init_weights_vit)

    def _run_stages(self, x, last_stage=3):
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for i, stage in enumerate(self.layers):
            x = stage(x)
            outs.append(x)
            if i == last_stage:
                break
            if stage.downsample is not None:
                x = stage.downsample(x.transpose([0, 3, 1, 2]))
        return outs

    def forward_features(self, x):
        self.require_classifier("forward_features")
        x = self.norm(self._run_stages(x)[-1])
        return x.mean(axis=[1, 2])

    def forward_pyramid(self, x):
        outs = self._run_stages(x, max(self.out_indices))
        feats = []
        for i in self.out_indices:
            f = outs[i]
            if self.features_only:
                f = self.out_norms.normalize(i, f)
            feats.append(f.transpose([0, 3, 1, 2]))
        return feats


# ---------------------------------------------------------------------------------------------
# Variants (Table 1) and their measured official counts
# ---------------------------------------------------------------------------------------------
_ARCH = {
    "T": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2),
    "S": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.3),
    "B": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.5),
}
_NAMES = {"T": "Tiny", "S": "Small", "B": "Base"}


def _variant(size, conv, params_m, gmacs):
    cfg = _ARCH[size]
    embed = "with the overlapping conv embeddings (7x7/4 stem, 3x3/2 downsampling)" if conv else "(Table 1)"
    return Variant(dict(cfg, use_conv_embed=conv),
                   reference_counts(params_m * 1e6, gmacs * 1e9,
                                    source="authors' PyTorch release, measured at 224"),
                   f"Focal-{_NAMES[size]}: C={cfg['embed_dim']}, depths {'-'.join(map(str, cfg['depths']))}, "
                   f"heads {'-'.join(map(str, cfg['num_heads']))} {embed}")


VARIANTS = {
    "FocalTransformer_T": _variant("T", False, 28.880, 4.953),
    "FocalTransformer_S": _variant("S", False, 51.142, 9.480),
    "FocalTransformer_B": _variant("B", False, 89.815, 16.436),
    "FocalTransformer_T_conv": _variant("T", True, 30.825, 5.200),
    "FocalTransformer_S_conv": _variant("S", True, 53.087, 9.727),
    "FocalTransformer_B_conv": _variant("B", True, 93.269, 16.861),
}
register_variants(FocalTransformer, "focal_transformer", PAPER, VARIANTS, globals())


# ---------------------------------------------------------------------------------------------
# Conversion of the authors' checkpoints
# ---------------------------------------------------------------------------------------------
# Integer buffers of the authors' model: recomputed here, never copied.
_OFFICIAL_BUFFERS = ("relative_position_index", "valid_ind_rolled", "relative_position_index_",
                     "valid_ind_unfold_", "attn_mask")


def _is_official_buffer(key):
    leaf = key.rsplit(".", 1)[-1]
    return leaf == "attn_mask" or any(leaf == b or leaf.startswith(b) for b in _OFFICIAL_BUFFERS[:4])


def _to_numpy(v):
    if hasattr(v, "detach"):  # a torch tensor, when the caller loaded the file with torch
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def unwrap_checkpoint(ckpt):
    """The authors' files hold {'model': sd, ...}; accept a raw sd and {'state_dict': sd} too."""
    if isinstance(ckpt, dict):
        for key in ("model", "state_dict"):
            if key in ckpt and isinstance(ckpt[key], dict):
                return ckpt[key]
    return ckpt


def convert_official_state_dict(official, model_state=None):
    """Map the authors' keys onto ours (same names by construction): Linear weights transposed,
    conv weights and bias tables copied, integer index buffers dropped (recomputed).
    ``model_state`` (our state dict) enables a strict name/shape check."""
    official = unwrap_checkpoint(official)
    out, skipped = {}, []
    for key, value in official.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if _is_official_buffer(key):
            skipped.append(key)
            continue
        arr = _to_numpy(value)
        if arr.ndim == 2 and key.endswith(".weight"):  # nn.Linear: [out, in] -> [in, out]
            arr = arr.T
        out[key] = np.ascontiguousarray(arr)
    if model_state is not None:
        missing = [k for k in model_state if k not in out]
        unexpected = [k for k in out if k not in model_state]
        bad = [(k, out[k].shape, tuple(model_state[k].shape)) for k in model_state
               if k in out and tuple(out[k].shape) != tuple(model_state[k].shape)]
        if missing or unexpected or bad:
            raise ValueError(f"official checkpoint does not fit: missing {missing[:10]}, "
                             f"unexpected {unexpected[:10]}, shape mismatches {bad[:10]}")
    return out


@register_converter("focal_transformer")
def _convert(model_name, official_state_dict):
    """Registry hook (``convert_checkpoint`` / tools/convert_weights.py). The class count is read
    from the checkpoint's head; a last stage with a neighbour table means the checkpoint was
    built at a size whose stage-4 map exceeds the window (e.g. 256), checked at that structure."""
    from ..registry import create_model
    state = unwrap_checkpoint(official_state_dict)
    kwargs = {}
    head = state.get("head.weight", state.get("module.head.weight"))
    if head is not None:
        kwargs["class_num"] = int(_to_numpy(head).shape[0])
    if any(k.startswith(("layers.3.", "module.layers.3.")) and k.endswith("_to_neighbors") for k in state):
        kwargs["img_size"] = 256
    model = create_model(model_name, **kwargs)
    return convert_official_state_dict(state, model.state_dict())
