"""MixFormer: Mixing Features across Windows and Dimensions (Chen et al., CVPR 2022).

The architecture, parameter names and shapes follow the authors' Paddle release (a PaddleClas
pull request that never reached PaddleClas develop), so its ``.pdparams`` load as they are:

* convolution stem (Sec. 3.3, Fig. 3): three 3x3 convs with BN + GELU, a 2x2 stride-2 conv,
  LayerNorm (inputs are zero-padded right/bottom to a multiple of 4 first);
* four stages of Mixing Blocks (Sec. 3.2, Fig. 1/2): 7x7 local-window attention on C/2 channels
  in parallel with a 3x3 depth-wise conv on C channels, a channel interaction (SE-like, from
  the conv branch) that scales V, a spatial interaction (from the attention output) that gates
  the conv branch, concatenation, projection, then an MLP; no window shift;
* BatchNorm + 2x2 stride-2 conv between stages (ConvMerging);
* projection layer (LayerNorm, Linear C4->1280, GELU, average pool) and a Linear classifier.

Differences from the official code (function unchanged where it runs):

* Layout. The official block moves every tensor between window and NCHW layouts with six-D
  transposes (five per block). Paddle's dygraph strided copy of such permutations is far slower
  than a row gather (docs/benchmarks.md), so here the residual stream stays in raster token order ``[B, H*W, C]``;
  the attention branch reaches window order with one ``gather`` of the qkv rows and returns
  with one ``gather``; heads move to the batch axis with 3-D transposes; the per-pixel
  ``spatial_interaction`` convs and ``conv_norm`` run on tokens (same weights, ``matmul`` /
  token BatchNorm). All of it is exact re-ordering: outputs match the official model to float
  rounding (see tests/test_mixformer.py and docs/models/mixformer.md).
* Exported graphs avoid the oneDNN pitfalls of Paddle 3.3.1 inference (docs/deploy.md): gather
  indices are sums of strided ``arange``s (no integer transpose, no multiplication after an
  integer sum) and token BatchNorm is an affine map.
* Odd feature sizes at downsampling: the official ConvMerging asserts even sizes. We zero-pad
  the normalised map right/bottom to even before the 2x2 stride-2 conv (what a conv with
  ``padding`` would do), so every input size works; the output side is ceil(H / 2), the size the
  official bookkeeping (``(H + 1) // 2``) already assumes.
* Window padding (right/bottom zeros after ``norm1``, no attention mask) is the official
  behaviour, kept for parity; one padding per block, as there.
* ``forward_pyramid`` returns the stage outputs (before downsampling) as NCHW maps; the official
  release has no dense-prediction code.
"""
import functools

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..layers import (GELU, DepthwiseConv2D, DropPath, Mlp, PointwiseConv2D, batch_norm_channels_last, init_weights_vit,
                      pad_nhwc, relative_position_index, trunc_normal_)
from ..paddle_compat import pad_arg
from .base import HybridBackbone, Variant, drop_path_rates, reference_counts, register_variants

__all__ = ["MixFormer", "MixFormer_B0", "MixFormer_B1", "MixFormer_B2", "MixFormer_B3",
           "MixFormer_B4", "MixFormer_B5", "MixFormer_B6"]

PAPER = "MixFormer: Mixing Features across Windows and Dimensions (Chen et al., CVPR 2022)"
_SOURCE = "official Paddle code (PaddleClas PR), measured"


def _is_zero(v):
    """True only for a Python int 0 (a symbolic size under to_static is never skipped)."""
    return isinstance(v, int) and v == 0


def _conv1x1_tokens(conv, x):
    """A 1x1 ``nn.Conv2D`` applied to channels-last tokens ``[B, L, C_in]`` as a matmul."""
    w = conv.weight
    out = paddle.matmul(x, w.reshape([w.shape[0], w.shape[1]]), transpose_y=True)
    return out + conv.bias if conv.bias is not None else out


def _strided_index(xp, axes):
    """Flat index of every point of a grid: ``sum_i arange(size_i) * stride_i`` broadcast over
    the grid of ``axes`` (``(size, stride)`` pairs, outermost first), flattened in grid order.
    ``xp`` is ``numpy`` (static sizes) or ``paddle`` (symbolic sizes under ``to_static``)."""
    total = None
    for i, (size, stride) in enumerate(axes):
        shape = [1] * len(axes)
        shape[i] = -1
        term = xp.arange(size, dtype="int64").reshape(shape) * stride
        total = term if total is None else total + term
    return total.reshape([-1])


def window_attention_indices(Hp, Wp, window_size, num_heads, xp=paddle):
    """Per-image row-gather indices between raster token order and the attention layout.

    For a padded ``Hp x Wp`` map (multiples of ``window_size``), ``L = Hp*Wp``,
    ``N = window_size**2``, ``nW = L / N`` windows (row-major; tokens row-major inside a window,
    as Swin's window_partition):

    * ``qkv_index``: rows of one image's qkv viewed as ``[L*3*heads, head_dim]`` -> layout
      ``[3, nW, heads, N, head_dim]`` (window partition and head split in one gather);
    * ``out_index``: rows of one image's attention output ``[nW*heads*N, head_dim]`` -> raster
      ``[L, heads*head_dim]``.

    A row gather replaces the six-D transposes of window partition/reverse (their strided copy
    is far slower in Paddle dygraph, docs/benchmarks.md). Each index is a sum of strided ``arange``s (no integer
    transpose, and no multiplication after an integer sum: Paddle 3.3.1's oneDNN passes turn
    both into wrong graphs, docs/deploy.md). Sizes may be symbolic (``xp=paddle``); static
    sizes use :func:`static_window_attention_indices`.
    """
    ws, nh = window_size, num_heads
    nH, nW = Hp // ws, Wp // ws
    row = 3 * nh  # qkv rows per token
    # qkv: grid [3, nH, nW, nh, ws, ws]; token (i*ws + a, j*ws + b), row t*nh + head within it
    qkv_index = _strided_index(xp, [(3, nh), (nH, ws * Wp * row), (nW, ws * row), (nh, 1),
                                    (ws, Wp * row), (ws, row)])
    # output: raster grid [nH, ws, nW, ws, nh] of rows laid out [nH, nW, nh, ws, ws]
    n = ws * ws
    out_index = _strided_index(xp, [(nH, nW * nh * n), (ws, ws), (nW, nh * n), (ws, 1), (nh, n)])
    return qkv_index, out_index


@functools.lru_cache(maxsize=32)
def static_window_attention_indices(Hp, Wp, window_size, num_heads):
    """:func:`window_attention_indices` of static sizes as NumPy arrays, computed once per size."""
    return window_attention_indices(Hp, Wp, window_size, num_heads, xp=np)


class MixingAttention(nn.Layer):
    """Mixing attention (Sec. 3.2): window attention on C/2 channels || depth-wise 3x3 conv on C
    channels, with channel interaction (conv -> V) and spatial interaction (attention -> conv).

    Input/output: raster tokens ``[B, Hp*Wp, C]`` of a map padded to window multiples.
    """

    def __init__(self, dim, window_size, dwconv_kernel_size, num_heads, qkv_bias=True,
                 qk_scale=None, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        if dim % 2 or (dim // 2) % num_heads:
            raise ValueError(f"dim {dim} must be even and dim/2 divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.head_dim = (dim // 2) // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5

        # Creation order fixes the state-dict order of the official release.
        self.relative_position_bias_table = self.create_parameter(
            shape=[(2 * window_size - 1) ** 2, num_heads], default_initializer=nn.initializer.Constant(0.0))
        self.register_buffer("relative_position_index",
                             paddle.to_tensor(relative_position_index(window_size)))
        self.proj_attn = nn.Linear(dim, dim // 2)
        self.proj_attn_norm = nn.LayerNorm(dim // 2)
        self.proj_cnn = nn.Linear(dim, dim)
        self.proj_cnn_norm = nn.LayerNorm(dim)
        # conv branch
        self.dwconv3x3 = nn.Sequential(
            DepthwiseConv2D(dim, dwconv_kernel_size, padding=dwconv_kernel_size // 2),
            nn.BatchNorm2D(dim),
            GELU(),
        )
        self.channel_interaction = nn.Sequential(
            PointwiseConv2D(dim, dim // 8),
            nn.BatchNorm2D(dim // 8),
            GELU(),
            PointwiseConv2D(dim // 8, dim // 2),
        )
        self.projection = PointwiseConv2D(dim, dim // 2)
        self.conv_norm = nn.BatchNorm2D(dim // 2)
        # window-attention branch
        self.qkv = nn.Linear(dim // 2, dim // 2 * 3, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop) if attn_drop > 0 else nn.Identity()
        self.spatial_interaction = nn.Sequential(
            nn.Conv2D(dim // 2, dim // 16, 1),
            nn.BatchNorm2D(dim // 16),
            GELU(),
            nn.Conv2D(dim // 16, 1, 1),
        )
        self.attn_norm = nn.LayerNorm(dim // 2)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()
        trunc_normal_(self.relative_position_bias_table)

    def relative_position_bias(self):
        """[heads, N, N] Swin relative position bias for one window."""
        n = self.window_size * self.window_size
        bias = paddle.gather(self.relative_position_bias_table,
                             self.relative_position_index.reshape([-1]))
        return bias.reshape([n, n, self.num_heads]).transpose([2, 0, 1])

    def forward(self, x, Hp, Wp, qkv_index, out_index):
        B, L = x.shape[0], x.shape[1]
        C, Ca, nh, hd = self.dim, self.dim // 2, self.num_heads, self.head_dim
        n = self.window_size * self.window_size

        x_attn = self.proj_attn_norm(self.proj_attn(x))          # [B, L, C/2]
        x_cnn = self.proj_cnn_norm(self.proj_cnn(x))             # [B, L, C]

        # conv branch, NCHW (the [B, L, C] -> [B, C, L] transpose is a fast 3-D permutation)
        x_cnn = x_cnn.transpose([0, 2, 1]).reshape([B, C, Hp, Wp])
        x_cnn = self.dwconv3x3(x_cnn)
        channel_gate = F.sigmoid(self.channel_interaction(F.adaptive_avg_pool2d(x_cnn, 1)))
        x_cnn = self.projection(x_cnn)                           # [B, C/2, Hp, Wp]
        x_cnn = x_cnn.reshape([B, Ca, L]).transpose([0, 2, 1])  # raster tokens [B, L, C/2]

        # attention branch: one row gather does window partition and head split
        qkv = paddle.gather(self.qkv(x_attn).reshape([B, -1, hd]), qkv_index, axis=1)
        qkv = qkv.reshape([B, 3, -1]).transpose([1, 0, 2]).reshape([3, -1, nh, n, hd])  # [3, B*nW, nh, N, hd]
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = paddle.matmul(q, k, transpose_y=True) + self.relative_position_bias()
        attn = self.attn_drop(F.softmax(attn, axis=-1))
        x_attn = paddle.gather(paddle.matmul(attn, v).reshape([B, -1, hd]), out_index, axis=1)
        # channel interaction: the official code scales V per image and channel; the gate is
        # constant over a window's tokens, so scaling attn @ V is the same product
        x_attn = x_attn.reshape([B, L, Ca]) * channel_gate.reshape([B, 1, Ca])   # raster

        # spatial interaction: per-pixel 1x1 convs on tokens gate the conv branch
        si = self.spatial_interaction
        gate = F.gelu(batch_norm_channels_last(si[1], _conv1x1_tokens(si[0], x_attn)))
        gate = F.sigmoid(_conv1x1_tokens(si[3], gate))                     # [B, L, 1]
        x_cnn = batch_norm_channels_last(self.conv_norm, x_cnn * gate)

        x = paddle.concat([self.attn_norm(x_attn), x_cnn], axis=-1)
        return self.proj_drop(self.proj(x))

    def extra_repr(self):
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class MixingBlock(nn.Layer):
    """Mixing Block (Sec. 3.2, Eq. 1-2): x + MIX(LN(x)), then x + MLP(LN(x)). No shift."""

    def __init__(self, dim, num_heads, window_size=7, dwconv_kernel_size=3, mlp_ratio=4.0,
                 qkv_bias=True, qk_scale=None, drop=0.0, attn_drop=0.0, drop_path=0.0):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MixingAttention(dim, window_size, dwconv_kernel_size, num_heads,
                                    qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                                    proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=GELU, drop=drop)  # keys fc1 / fc2 as the official release

    def forward(self, x, H, W, Hp, Wp, qkv_index, out_index):
        """``x``: raster tokens [B, H*W, C]; Hp, Wp: H, W rounded up to window multiples."""
        B, C = x.shape[0], self.dim
        shortcut = x
        x = self.norm1(x)
        pad_h, pad_w = Hp - H, Wp - W
        padded = not (_is_zero(pad_h) and _is_zero(pad_w))
        if padded:  # official: zero padding right/bottom after norm1, no mask
            x = pad_nhwc(x.reshape([B, H, W, C]), 0, pad_w, 0, pad_h)
            x = x.reshape([B, Hp * Wp, C])
        x = self.attn(x, Hp, Wp, qkv_index, out_index)
        if padded:
            x = x.reshape([B, Hp, Wp, C])[:, :H, :W, :].reshape([B, H * W, C])
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvMerging(nn.Layer):
    """Downsampling between stages: BatchNorm, then a 2x2 stride-2 conv C -> C_out.

    Odd sides are zero-padded right/bottom after the norm (the official code asserts even
    sides); the output side is ceil(side / 2).
    """

    def __init__(self, dim, out_dim):
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim
        self.reduction = nn.Conv2D(dim, out_dim, kernel_size=2, stride=2)
        self.norm = nn.BatchNorm2D(dim)

    def forward(self, x, H, W):
        B = x.shape[0]
        x = self.norm(x.transpose([0, 2, 1]).reshape([B, self.dim, H, W]))
        pad_h, pad_w = H % 2, W % 2
        if not (_is_zero(pad_h) and _is_zero(pad_w)):
            x = F.pad(x, pad_arg([0, pad_w, 0, pad_h]))
        x = self.reduction(x)
        Ho, Wo = x.shape[2], x.shape[3]
        return x.flatten(2).transpose([0, 2, 1]), Ho, Wo


class BasicLayer(nn.Layer):
    """One stage: ``depth`` Mixing Blocks, then an optional ConvMerging."""

    def __init__(self, dim, depth, num_heads, window_size=7, dwconv_kernel_size=3, mlp_ratio=4.0,
                 qkv_bias=True, qk_scale=None, drop=0.0, attn_drop=0.0, drop_path=0.0,
                 out_dim=None):
        super().__init__()
        self.window_size = window_size
        self.depth = depth
        self.num_heads = num_heads
        drop_path = drop_path if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        self.blocks = nn.LayerList([
            MixingBlock(dim, num_heads, window_size, dwconv_kernel_size, mlp_ratio, qkv_bias,
                        qk_scale, drop, attn_drop, drop_path[i]) for i in range(depth)])
        self.downsample = ConvMerging(dim, out_dim) if out_dim else None

    def attention_indices(self, Hp, Wp):
        """:func:`window_attention_indices` for this stage: constants for static sizes (computed
        once per size), graph ops for symbolic ones."""
        if isinstance(Hp, int) and isinstance(Wp, int):
            return [paddle.to_tensor(i) for i in static_window_attention_indices(Hp, Wp, self.window_size,
                                                                                  self.num_heads)]
        return window_attention_indices(Hp, Wp, self.window_size, self.num_heads)

    def forward(self, x, H, W):
        """Returns (stage output tokens, H, W, next-stage tokens, H', W')."""
        ws = self.window_size
        Hp = (H + ws - 1) // ws * ws
        Wp = (W + ws - 1) // ws * ws
        qkv_index, out_index = self.attention_indices(Hp, Wp)  # shared by the blocks
        for blk in self.blocks:
            x = blk(x, H, W, Hp, Wp, qkv_index, out_index)
        if self.downsample is None:
            return x, H, W, x, H, W
        x_down, Ho, Wo = self.downsample(x, H, W)
        return x, H, W, x_down, Ho, Wo


class ConvEmbed(nn.Layer):
    """Convolution stem (Fig. 3): pad to a multiple of 4, 3x3 s2 + two 3x3 (BN, GELU each),
    2x2 s2 projection, LayerNorm. Keys ``stem.{0,1,3,4,6,7}``, ``proj``, ``norm`` as official."""

    def __init__(self, in_chans=3, embed_dim=96, patch_size=4):
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        half = embed_dim // 2
        self.stem = nn.Sequential(
            nn.Conv2D(in_chans, half, 3, stride=patch_size // 2, padding=1), nn.BatchNorm2D(half), GELU(),
            nn.Conv2D(half, half, 3, stride=1, padding=1), nn.BatchNorm2D(half), GELU(),
            nn.Conv2D(half, half, 3, stride=1, padding=1), nn.BatchNorm2D(half), GELU(),
        )
        self.proj = nn.Conv2D(half, embed_dim, patch_size // 2, stride=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        """NCHW image -> (raster tokens [B, H/4 * W/4, C], H/4, W/4), sides rounded up."""
        H, W = x.shape[2], x.shape[3]
        p = self.patch_size
        pad_h, pad_w = (p - H % p) % p, (p - W % p) % p
        if not (_is_zero(pad_h) and _is_zero(pad_w)):
            x = F.pad(x, pad_arg([0, pad_w, 0, pad_h]))
        x = self.proj(self.stem(x))
        Ho, Wo = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose([0, 2, 1])), Ho, Wo


class MixFormer(HybridBackbone):
    """MixFormer backbone + classifier (PaddleClas conventions: ``forward_features`` returns the
    pooled 1280-d vector, ``head`` maps it to ``class_num`` logits)."""

    classifier_prefixes = ("head.",)
    # The official YAMLs' Optimizer.no_weight_decay_name.
    no_weight_decay_keywords = ("absolute_pos_embed", "relative_position_bias_table", ".bias", "norm")

    def __init__(self, in_chans=3, class_num=1000, embed_dim=96, depths=(2, 2, 6, 2),
                 num_heads=(3, 6, 12, 24), window_size=7, dwconv_kernel_size=3, mlp_ratio=4.0,
                 qkv_bias=True, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0,
                 drop_path_rate=0.1, last_dim=1280, out_indices=(0, 1, 2, 3), features_only=False,
                 img_size=None):
        # img_size is accepted for config compatibility with the official class; any input
        # size works, so it is not used.
        super().__init__(in_chans, class_num, out_indices, features_only)
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError("MixFormer has four stages: depths and num_heads need 4 entries")
        dims = [embed_dim * 2 ** i for i in range(4)] if isinstance(embed_dim, int) else list(embed_dim)
        self.embed_dim = dims
        self.num_features = last_dim
        self.window_size = window_size
        self.feature_info = [dict(channels=dims[i], stride=4 * 2 ** i) for i in range(4)]

        self.patch_embed = ConvEmbed(in_chans, dims[0])
        self.pos_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        dpr = drop_path_rates(drop_path_rate, depths)
        self.layers = nn.LayerList()
        for i in range(4):
            self.layers.append(BasicLayer(
                dims[i], depths[i], num_heads[i], window_size, dwconv_kernel_size, mlp_ratio,
                qkv_bias, qk_scale, drop_rate, attn_drop_rate, dpr[i],
                out_dim=dims[i + 1] if i < 3 else None))
        if not features_only:  # the classification head: a dense backbone has none (as every family)
            self.norm = nn.LayerNorm(dims[-1])
            self.last_proj = nn.Linear(dims[-1], last_dim)
            self.activate = GELU()
            self.head = self.classifier(class_num)
        self.apply(init_weights_vit)

    def forward_features(self, x):
        self.require_classifier("forward_features")
        x, H, W = self.patch_embed(x)
        x = self.pos_drop(x)
        for layer in self.layers:
            _, _, _, x, H, W = layer(x, H, W)
        x = self.activate(self.last_proj(self.norm(x)))   # GELU per token, then average pool
        return x.mean(axis=1)

    def forward_pyramid(self, x):
        x, H, W = self.patch_embed(x)
        x = self.pos_drop(x)
        maps = []
        last = max(self.out_indices)
        for i, layer in enumerate(self.layers):
            if i > last:
                break
            out, Hs, Ws, x, H, W = layer(x, H, W)
            if i in self.out_indices:
                B, C = out.shape[0], out.shape[2]
                maps.append(out.transpose([0, 2, 1]).reshape([B, C, Hs, Ws]))
        return maps


def _variant(embed_dim, depths, num_heads, drop_path_rate, params, macs):
    return Variant(dict(embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                        drop_path_rate=drop_path_rate),
                   reference_counts(params, macs, source=_SOURCE),
                   f"embed_dim {embed_dim}, depths {list(depths)}, heads {list(num_heads)}, "
                   f"default drop_path_rate {drop_path_rate}")


VARIANTS = {
    # name: embed_dim, depths, num_heads, drop_path_rate, official params, official MACs
    "MixFormer_B0": _variant(24, (1, 2, 6, 6), (3, 6, 12, 24), 0.0, 5.099e6, 0.402e9),
    "MixFormer_B1": _variant(32, (1, 2, 6, 6), (2, 4, 8, 16), 0.0, 7.888e6, 0.699e9),
    "MixFormer_B2": _variant(32, (2, 2, 8, 8), (2, 4, 8, 16), 0.05, 9.895e6, 0.898e9),
    "MixFormer_B3": _variant(48, (2, 2, 8, 6), (3, 6, 12, 24), 0.1, 16.748e6, 1.804e9),
    "MixFormer_B4": _variant(64, (2, 2, 8, 8), (4, 8, 16, 32), 0.2, 34.798e6, 3.475e9),
    "MixFormer_B5": _variant(96, (1, 2, 8, 6), (6, 12, 24, 48), 0.3, 61.692e6, 6.689e9),
    "MixFormer_B6": _variant(96, (2, 4, 16, 12), (6, 12, 24, 48), 0.5, 119.505e6, 12.562e9),
}
register_variants(MixFormer, "mixformer", PAPER, VARIANTS, globals())
