"""MAFormer: Multi-scale Attention Fusion transformer (MAFormer-S/B/L).

Paper: "MAFormer: A Transformer Network with Multi-scale Attention Fusion for Visual Recognition"
(arXiv 2209.01620). No code was released; the paper's gaps are resolved by numbered assumptions (A1..A20,
listed in ``docs/models/maformer.md`` with the reasons for each and for every deviation).

Architecture (paper Sec. 3.1, Fig. 1; assumptions A1-A20 in docs/models/maformer.md):

* stem: Conv 7x7/s4 + LN (A3); merging before stages 2-4: Conv 3x3/s2 + LN (A3).
  ``embed='patch'`` gives the Swin-style patchify alternative (4x4/s4, 2x2/s2).
* stages 1-2: MAF blocks (Sec. 3.2), three parts per block:
  - local branch, eq. (1): a pre-norm transformer block with CSWin cross-shaped stripe attention
    (stripe widths 1 and 2, A2), LePE on V, MLP ratio 4; ``local_attn='swin'`` swaps in
    (shifted) 7x7 window attention (Table 2 ablation);
  - global branch, eq. (2): GLD (Global Learning with Down-sampling, A4) on the block input:
    an area-pooled 14x14 grid -> a learned token-mixing FC (196 -> 49 tokens, ratio N = 0.5 per
    axis) plus ``Pos`` = bilinear resize of the input to 7x7. The grid is fixed, so the cost is
    linear in the number of tokens and any input size works (detection inputs included);
    ``global_op='conv'`` swaps in a strided conv (Table 2 ablation);
  - fusion, eqs. (3)-(4): multi-head cross attention, queries from the local branch output,
    keys/values from the global tokens, output projection and residual (A6, A7); no further MLP
    (A8). ``fusion='local_enhanced'`` feeds GLD the local attention output (Fig. 2(b)).
* stages 3-4: "original ViT blocks" (global MHSA), each preceded by a residual depthwise 3x3
  conv positional encoding (DPE, A9).
* head: LN -> global average -> Linear (A10). Optional token-labeling auxiliary head (LV-ViT
  style; ``token_label_head=True``, see ``ppvision_hybrid/losses_token_label.py``).

Layout and speed: activations stay channels-last ``[B, H, W, C]`` from the stem to the last
stage, so Linear/LayerNorm act on the last axis and no layout change is needed between blocks
(convs are applied through two 4-D transposes, see ``_conv_nhwc``). In the default model every
transpose is 4-D at most (Paddle's CPU 5-/6-D transposes cost ~10x more per element; only the
``local_attn='swin'`` ablation uses window partition); attention heads run one by one on channel
slices (``_attend``); CSWin's vertical stripes are computed as horizontal stripes of the
transposed map; GLD's pooling / bilinear resampling are separable matrix products applied in
token layout (exactly equal to ``adaptive_avg_pool2d`` and ``interpolate(bilinear,
align_corners=False)``, built from the runtime H/W so they export with dynamic shapes and put no
``interpolate`` op into exported graphs). Timings: docs/models/maformer.md, "Speed".

Deviations from the assumptions as first written (see docs/models/maformer.md):

* GLD's 14x14 source grid is area pooling at every size (for maps smaller than 14 the same
  adaptive-pool rule replicates cells) instead of switching to bilinear below 14; this removes a
  data-dependent branch from the exported graph and is continuous across sizes.
* Depthwise convs (LePE, DPE) use PyTorch's default init (uniform +-1/sqrt(fan_in)), which is
  what CSWin/UniFormer actually train with; a fan_out Kaiming init on a residual depthwise conv
  multiplies the activation variance by ~3 per block.
* Padded stripe keys are masked (-1e4 before softmax): results for valid tokens equal those of
  an unpadded model whose last stripe is shorter (tests/test_maformer.py).
* Dense features: stage outputs, each with its own LayerNorm (A16), exist only with
  ``features_only=True`` (the classifier head is then not built), as in detection backbones.
"""
import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..layers import (GELU, DepthwiseConv2D, DropPath, Mlp, adaptive_pool_matrix, depthwise_conv2d,
                      floor_with_fraction, init_weights_vit, kaiming_normal_fan_out_, pad_to_multiple,
                      relative_position_index, trunc_normal_, window_partition, window_reverse, zeros_)
from .base import HybridBackbone, StageNorms, Variant, drop_path_rates, reference_counts, register_variants

__all__ = ["MAFormer", "MAFormer_S", "MAFormer_B", "MAFormer_L", "CSWinAttention",
           "GlobalLearningDownsample", "MultiScaleAttentionFusion", "MAFBlock", "ViTBlock",
           "resample_matrices"]

PAPER = "MAFormer: A Transformer Network with Multi-scale Attention Fusion for Visual Recognition (arXiv 2209.01620)"

# Added to the logits of padded keys. Large enough that exp() underflows to exactly 0 in fp32,
# small enough to stay finite in fp16.
_MASK_VALUE = -1e4


# ----------------------------------------------------------------------------------------------
# Resampling matrices (GLD): adaptive average pooling and bilinear resizing as matrices
# ----------------------------------------------------------------------------------------------
def _bilinear_matrix(size, out):
    """[out, size] rows of ``interpolate(mode='bilinear', align_corners=False)`` along one axis
    (half-pixel centres, source coordinate clamped at 0, upper neighbour clamped at size-1)."""
    size_f = paddle.full([1], size, dtype="float32")
    src = (paddle.arange(out, dtype="float32") + 0.5) * (size_f / out) - 0.5
    src = paddle.clip(src, min=0.0)
    i0, frac = floor_with_fraction(src)
    i0, frac = i0.astype("float32"), frac.unsqueeze(1)
    i1 = paddle.minimum(i0 + 1.0, size_f - 1.0)
    pos = paddle.arange(size, dtype="float32").unsqueeze(0)
    return ((pos == i0.unsqueeze(1)).astype("float32") * (1.0 - frac)
            + (pos == i1.unsqueeze(1)).astype("float32") * frac)


def resample_matrices(height, width, grid, source_grid):
    """Matrices GLD needs for one map size, built once per stage and shared by its blocks.

    Returns ``(rows, cols_pool, cols_pos)``: ``rows`` [source_grid + grid, H] stacks the pooling
    rows and the bilinear rows (one matmul serves both), ``cols_*`` act along W.
    """
    rows = paddle.concat([adaptive_pool_matrix(height, source_grid), _bilinear_matrix(height, grid)], axis=0)
    return rows, adaptive_pool_matrix(width, source_grid), _bilinear_matrix(width, grid)


# ----------------------------------------------------------------------------------------------
# Local branch: CSWin cross-shaped stripe attention (paper Sec. 3.2 "Local aggregation")
# ----------------------------------------------------------------------------------------------
def _dwconv3x3(dim):
    """Depthwise 3x3 conv (LePE / DPE); applied to channels-last maps via :func:`_conv_nhwc`."""
    return DepthwiseConv2D(dim, 3, padding=1)


def _conv_nhwc(conv, x):
    """Apply an NCHW conv layer to a channels-last map. Convs run in NCHW because Paddle 3.3.1's
    oneDNN conv kernel rejects ``data_format='NHWC'`` for grouped convs (the exported model
    would fail in Paddle Inference with oneDNN on); in dygraph the two transposes cost about the
    same as the NHWC kernel's own layout handling."""
    return conv(x.transpose([0, 3, 1, 2])).transpose([0, 2, 3, 1])


# Floats of the attention scores computed at once: a larger score matrix (global attention on
# dense inputs) is computed for a chunk of queries at a time, so that the scores stay in cache
# (docs/benchmarks.md, "Session 11 / issue 25 phase 2b"). Query rows are independent: the same
# result up to float rounding.
_SCORE_CHUNK = 1 << 20


def _query_chunks(queries, keys):
    """``[(start, stop)]`` query ranges of :func:`_attend` for ``queries`` x ``keys`` scores per
    matrix: one range, unless the sizes are static and the scores exceed two chunks."""
    if not (isinstance(queries, int) and isinstance(keys, int)) or min(queries, keys) <= 0 \
            or queries * keys <= 2 * _SCORE_CHUNK:
        return [(0, queries)]
    rows = max(_SCORE_CHUNK // keys, 1)
    return [(start, min(start + rows, queries)) for start in range(0, queries, rows)]


def _attend(q, k, v, num_heads, scale, key_bias=None, groups=1):
    """Multi-head softmax attention on token-layout tensors.

    q [N, Lq, h*d], k / v [N, Lk, h*d] -> [N, Lq, h*d]. ``key_bias`` [groups, Lk] is added to the
    logits of every query, where ``N = B * groups`` (window j of every image gets row j).
    Heads are processed one by one on channel slices with 3-D matmuls and concatenated: no head
    transposes: Paddle's CPU transpose of [N, L, h, d] takes a slow generic path whenever N > 1
    (docs/models/maformer.md, "Speed"). Large score matrices are computed in query chunks
    (:func:`_query_chunks`).
    """
    C = q.shape[-1]
    d = C // num_heads
    bias = None
    if key_bias is not None:
        bias = key_bias.reshape([groups, 1, k.shape[1]])
    chunks = _query_chunks(q.shape[1], k.shape[1])
    outs = []
    for i in range(num_heads):
        if num_heads > 1:
            qi, ki, vi = q[:, :, i * d:(i + 1) * d], k[:, :, i * d:(i + 1) * d], v[:, :, i * d:(i + 1) * d]
        else:
            qi, ki, vi = q, k, v
        qi = qi * scale
        parts = []
        for start, stop in chunks:
            attn = paddle.matmul(qi if len(chunks) == 1 else qi[:, start:stop], ki, transpose_y=True)  # [N, Lq, Lk]
            if bias is not None:
                N, Lq, Lk = attn.shape
                attn = (attn.reshape([-1, groups, Lq, Lk]) + bias).reshape([N, Lq, Lk])
            parts.append(paddle.matmul(F.softmax(attn, axis=-1), vi))
        outs.append(parts[0] if len(parts) == 1 else paddle.concat(parts, axis=1))
    return outs[0] if num_heads == 1 else paddle.concat(outs, axis=-1)


class CSWinAttention(nn.Layer):
    """Cross-shaped window self-attention (Dong et al. 2021) with LePE.

    Half of the heads attend within horizontal stripes of ``stripe`` rows x full width, the other
    half within vertical stripes of full height x ``stripe`` columns. Each half has its own qkv
    projection (the same weights as CSWin's single qkv Linear, split by output channels) so the
    vertical half can run on the transposed map with the horizontal code path. Maps whose side is
    not a multiple of ``stripe`` are zero-padded and the padded keys are masked out of the softmax.
    """

    def __init__(self, dim, num_heads, stripe=1, mask_padding=True):
        super().__init__()
        if num_heads % 2 or dim % num_heads:
            raise ValueError(f"CSWin needs an even head count dividing dim, got dim={dim}, heads={num_heads}")
        self.dim, self.num_heads, self.stripe = dim, num_heads, int(stripe)
        self.branch_heads = num_heads // 2
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.mask_padding = mask_padding
        half = dim // 2
        # Output channel layout of each qkv Linear: [q | k | v], each (branch_heads, head_dim).
        self.qkv_h = nn.Linear(dim, 3 * half)
        self.qkv_v = nn.Linear(dim, 3 * half)
        self.lepe_h = _dwconv3x3(half)
        self.lepe_v = _dwconv3x3(half)
        self.proj = nn.Linear(dim, dim)

    def _lepe(self, lepe, v, B, n, Hp, W):
        """LePE(V): depthwise 3x3 within each stripe, zero padding at stripe borders."""
        half, s = self.dim // 2, self.stripe
        if s == 1:
            # One-row stripes: only the kernel's middle row meets data, so one 1x3 conv over the
            # whole map equals the per-stripe 3x3 conv (and avoids B*H tiny convolutions).
            out = depthwise_conv2d(v.reshape([B, Hp, W, half]).transpose([0, 3, 1, 2]),
                                   lepe.weight[:, :, 1:2, :], lepe.bias, padding=(0, 1))
            return out.transpose([0, 2, 3, 1]).reshape([B * n, s * W, half])
        return _conv_nhwc(lepe, v.reshape([B * n, s, W, half])).reshape([B * n, s * W, half])

    def _stripes(self, x, qkv_layer, lepe):
        """Attention within horizontal stripes of ``x`` [B, H, W, C] -> [B, H, W, C/2]."""
        B, H, W, _ = x.shape
        half, s = self.dim // 2, self.stripe
        qkv = qkv_layer(x)
        if s > 1:
            qkv, _, _ = pad_to_multiple(qkv, s, 1)
        Hp = qkv.shape[1]
        n = Hp // s
        length = s * W
        q, k, v = paddle.split(qkv.reshape([B * n, length, 3 * half]), 3, axis=-1)
        key_bias = None
        if s > 1 and self.mask_padding:
            # Key p of stripe j lies in row j*s + p // W; rows >= H are padding.
            rows = (paddle.arange(n, dtype="int64").unsqueeze(1) * s
                    + paddle.arange(length, dtype="int64").unsqueeze(0) // W)
            key_bias = (rows >= H).astype(q.dtype) * _MASK_VALUE  # [n, L]
        out = _attend(q, k, v, self.branch_heads, self.scale, key_bias, n)
        out = (out + self._lepe(lepe, v, B, n, Hp, W)).reshape([B, Hp, W, half])
        if s > 1:
            out = out[:, :H]
        return out

    def forward(self, x):
        """x [B, H, W, C] (already normalised) -> [B, H, W, C]."""
        horizontal = self._stripes(x, self.qkv_h, self.lepe_h)
        vertical = self._stripes(x.transpose([0, 2, 1, 3]), self.qkv_v, self.lepe_v).transpose([0, 2, 1, 3])
        return self.proj(paddle.concat([horizontal, vertical], axis=-1))


class SwinWindowAttention(nn.Layer):
    """(Shifted) window attention with a relative position bias (Liu et al. 2021); the
    ``local_attn='swin'`` ablation of Table 2. Padded tokens and wrapped-around regions are
    masked with one region-label comparison."""

    def __init__(self, dim, num_heads, window=7, shift=0):
        super().__init__()
        self.dim, self.num_heads, self.window, self.shift = dim, num_heads, window, shift
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = self.create_parameter(
            [(2 * window - 1) ** 2, num_heads], default_initializer=nn.initializer.Constant(0.0))
        trunc_normal_(self.relative_position_bias_table)
        self.register_buffer("relative_position_index",
                             paddle.to_tensor(relative_position_index(window).reshape([-1])),
                             persistable=False)

    def _region_labels(self, size, padded, shift):
        """Label of each (shifted) position along one axis: padding, wrap-around strips and the
        rest get different labels; tokens attend only to equal labels."""
        ws = self.window
        pos = paddle.arange(padded, dtype="int64")
        orig = (pos + shift) % padded  # position in the unshifted padded map
        label = paddle.zeros_like(pos)
        if shift > 0:
            label = (pos >= padded - ws).astype("int64") + (pos >= padded - shift).astype("int64")
        return label + 3 * (orig >= size).astype("int64")

    def forward(self, x):
        B, H, W, C = x.shape
        ws, shift = self.window, self.shift
        x, _, _ = pad_to_multiple(x, ws, ws)
        Hp, Wp = x.shape[1], x.shape[2]
        if shift > 0:
            x = paddle.roll(x, shifts=(-shift, -shift), axis=(1, 2))
        windows = window_partition(x, ws)  # [B*nW, ws*ws, C]
        nwin = (Hp // ws) * (Wp // ws)
        length = ws * ws
        qkv = self.qkv(windows).reshape([-1, length, 3 * self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])
        q, k, v = paddle.split(qkv, 3, axis=1)
        attn = paddle.matmul(q * self.scale, k, transpose_y=True)
        bias = paddle.gather(self.relative_position_bias_table, self.relative_position_index)
        attn = attn + bias.reshape([length, length, self.num_heads]).transpose([2, 0, 1]).unsqueeze(0)
        lab = (self._region_labels(H, Hp, shift).unsqueeze(1) * 16
               + self._region_labels(W, Wp, shift).unsqueeze(0)).astype("float32")
        lab = window_partition(lab.reshape([1, Hp, Wp, 1]), ws).reshape([nwin, length])
        mask = (lab.unsqueeze(2) != lab.unsqueeze(1)).astype(attn.dtype) * _MASK_VALUE
        attn = (attn.reshape([B, nwin, self.num_heads, length, length]) + mask.unsqueeze(1)
                ).reshape([-1, self.num_heads, length, length])
        attn = F.softmax(attn, axis=-1)
        out = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([-1, length, C])
        out = window_reverse(self.proj(out), ws, Hp, Wp)
        if shift > 0:
            out = paddle.roll(out, shifts=(shift, shift), axis=(1, 2))
        return out[:, :H, :W]


# ----------------------------------------------------------------------------------------------
# Global branch: GLD (paper eq. 2) and the strided-conv ablation
# ----------------------------------------------------------------------------------------------
class GlobalLearningDownsample(nn.Layer):
    """GLD: ``x_G = Pos(x) + FC(x)`` on a fixed grid (A4).

    ``FC``: the map is area-pooled to ``source_grid x source_grid`` (= grid / N, N = 0.5) and a
    learned token-mixing layer maps those ``source_grid**2`` positions to ``grid**2`` global
    tokens (weights shared over channels). ``Pos``: the map bilinearly resized to ``grid x grid``.
    Cost ~ (source_grid + grid) * H * W * C: linear in the number of tokens.
    """

    def __init__(self, dim, grid=7, ratio=0.5):
        super().__init__()
        self.grid = int(grid)
        self.source_grid = int(round(grid / ratio))
        self.norm = nn.LayerNorm(dim)
        n_in, n_out = self.source_grid ** 2, self.grid ** 2
        self.token_fc_weight = self.create_parameter([n_out, n_in])
        self.token_fc_bias = self.create_parameter([n_out], is_bias=True)
        trunc_normal_(self.token_fc_weight)
        zeros_(self.token_fc_bias)

    def forward(self, x, matrices):
        """x [B, H, W, C] -> global tokens [B, grid*grid, C]."""
        rows, cols_pool, cols_pos = matrices
        B, H, W, C = x.shape
        g, gs = self.grid, self.source_grid
        x = self.norm(x)
        both = paddle.matmul(rows, x.reshape([B, H, W * C]))  # [B, gs + g, W*C]
        pooled = paddle.matmul(cols_pool, both[:, :gs].reshape([B * gs, W, C]))  # [B*gs, gs, C]
        pos = paddle.matmul(cols_pos, both[:, gs:].reshape([B * g, W, C]))  # [B*g, g, C]
        mixed = paddle.matmul(self.token_fc_weight, pooled.reshape([B, gs * gs, C])) + self.token_fc_bias.unsqueeze(-1)
        return pos.reshape([B, g * g, C]) + mixed


class ConvGlobal(nn.Layer):
    """``global_op='conv'`` (Table 2, "basic-configured convolution"): Conv k=r, s=r (PVT-style
    spatial reduction), r = 8 / 4 in stages 1 / 2 -> 7x7 tokens at 224. The token count grows
    with the input, so this alternative is quadratic in tokens, unlike GLD."""

    def __init__(self, dim, reduction):
        super().__init__()
        self.reduction = reduction
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2D(dim, dim, reduction, stride=reduction)

    def forward(self, x, matrices=None):
        x, _, _ = pad_to_multiple(self.norm(x), self.reduction, self.reduction)
        x = _conv_nhwc(self.conv, x)
        return x.reshape([x.shape[0], -1, x.shape[3]])


class MultiScaleAttentionFusion(nn.Layer):
    """Eqs. (3)-(4): softmax(Q_L K_G^T / sqrt(d)) V_G with multi-head cross attention, pre-norms
    on both inputs and an output projection (A6, A7)."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x_local, x_global):
        """x_local [B, L, C], x_global [B, M, C] -> [B, L, C]."""
        q = self.q(self.norm_q(x_local))
        k, v = paddle.split(self.kv(self.norm_kv(x_global)), 2, axis=-1)
        return self.proj(_attend(q, k, v, self.num_heads, self.scale))  # attn [B, h, L, M]


# ----------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------
class MAFBlock(nn.Layer):
    """Multi-scale Attention Fusion block (paper Sec. 3.2, Fig. 1(b), Fig. 2(c))."""

    def __init__(self, dim, num_heads, stripe=1, mlp_ratio=4.0, drop_path=0.0, local_attn="cswin",
                 global_op="gld", fusion="maf", gld_grid=7, gld_ratio=0.5, conv_reduction=8,
                 shift=0):
        super().__init__()
        if fusion not in ("maf", "local_enhanced"):
            raise ValueError(f"fusion must be 'maf' or 'local_enhanced', got {fusion!r}")
        self.fusion_mode = fusion
        self.norm1 = nn.LayerNorm(dim)
        if local_attn == "cswin":
            self.attn = CSWinAttention(dim, num_heads, stripe)
        elif local_attn == "swin":
            self.attn = SwinWindowAttention(dim, num_heads, window=7, shift=shift)
        else:
            raise ValueError(f"local_attn must be 'cswin' or 'swin', got {local_attn!r}")
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=GELU)
        if global_op == "gld":
            self.global_branch = GlobalLearningDownsample(dim, gld_grid, gld_ratio)
        elif global_op == "conv":
            self.global_branch = ConvGlobal(dim, conv_reduction)
        else:
            raise ValueError(f"global_op must be 'gld' or 'conv', got {global_op!r}")
        self.fusion = MultiScaleAttentionFusion(dim, num_heads)

    def forward(self, x, matrices=None):
        """x [B, H, W, C] -> [B, H, W, C]."""
        B, H, W, C = x.shape
        x_local = x + self.drop_path(self.attn(self.norm1(x)))
        global_in = x_local if self.fusion_mode == "local_enhanced" else x
        x_local = x_local + self.drop_path(self.mlp(self.norm2(x_local)))
        x_global = self.global_branch(global_in, matrices)
        x_local = x_local.reshape([B, H * W, C])
        out = x_local + self.drop_path(self.fusion(x_local, x_global))
        return out.reshape([B, H, W, C])


class Attention(nn.Layer):
    """Global multi-head self-attention over all tokens (ViT)."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = paddle.split(self.qkv(x), 3, axis=-1)
        return self.proj(_attend(q, k, v, self.num_heads, self.scale))


class ViTBlock(nn.Layer):
    """Stage-3/4 block: DPE (residual depthwise 3x3, A9) + pre-norm MHSA + MLP."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, drop_path=0.0, pos_embed="dpe",
                 layer_scale=None):
        super().__init__()
        self.pos_embed = _dwconv3x3(dim) if pos_embed == "dpe" else None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=GELU)
        self.gamma1 = self.gamma2 = None
        if layer_scale:  # A15: optional, off by default
            self.gamma1 = self.create_parameter([dim], default_initializer=nn.initializer.Constant(layer_scale))
            self.gamma2 = self.create_parameter([dim], default_initializer=nn.initializer.Constant(layer_scale))

    def forward(self, x, matrices=None):
        B, H, W, C = x.shape
        if self.pos_embed is not None:
            x = x + _conv_nhwc(self.pos_embed, x)
        x = x.reshape([B, H * W, C])
        a = self.attn(self.norm1(x))
        x = x + self.drop_path(a if self.gamma1 is None else a * self.gamma1)
        m = self.mlp(self.norm2(x))
        x = x + self.drop_path(m if self.gamma2 is None else m * self.gamma2)
        return x.reshape([B, H, W, C])


# ----------------------------------------------------------------------------------------------
# Stem, merging, stages
# ----------------------------------------------------------------------------------------------
class Stem(nn.Layer):
    """NCHW image -> [B, H/4, W/4, C] tokens. 'conv': 7x7/s4/p3 (CSWin, A3); 'patch': 4x4/s4."""

    def __init__(self, in_chans, dim, embed="conv"):
        super().__init__()
        self.embed = embed
        if embed == "conv":
            self.proj = nn.Conv2D(in_chans, dim, 7, stride=4, padding=3)
        elif embed == "patch":
            self.proj = nn.Conv2D(in_chans, dim, 4, stride=4)
        else:
            raise ValueError(f"embed must be 'conv' or 'patch', got {embed!r}")
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        if self.embed == "patch":
            x, _, _ = pad_to_multiple(x, 4, 4, data_format="NCHW")
        return self.norm(self.proj(x).transpose([0, 2, 3, 1]))


class Merge(nn.Layer):
    """2x down-sampling between stages on channels-last maps: Conv 3x3/s2/p1 + LN (A3), or
    2x2/s2 + LN for ``embed='patch'``."""

    def __init__(self, in_dim, out_dim, embed="conv"):
        super().__init__()
        self.embed = embed
        if embed == "conv":
            self.proj = nn.Conv2D(in_dim, out_dim, 3, stride=2, padding=1)
        else:
            self.proj = nn.Conv2D(in_dim, out_dim, 2, stride=2)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x):
        if self.embed == "patch":
            x, _, _ = pad_to_multiple(x, 2, 2)
        return self.norm(_conv_nhwc(self.proj, x))


class Stage(nn.Layer):
    def __init__(self, blocks, downsample=None, gld_grid=None, gld_source_grid=None):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.LayerList(blocks)
        self.gld_grid, self.gld_source_grid = gld_grid, gld_source_grid

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        matrices = None
        if self.gld_grid:
            matrices = resample_matrices(x.shape[1], x.shape[2], self.gld_grid, self.gld_source_grid)
        for blk in self.blocks:
            x = blk(x, matrices)
        return x


# ----------------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------------
class MAFormer(HybridBackbone):
    """MAFormer backbone / classifier (paper Table 1; A1-A3).

    Args (beyond the HybridBackbone ones):
        embed_dims, depths, num_heads: per stage (heads = dim / 32, A1).
        stripes: CSWin stripe widths of stages 1-2 (A2).
        mlp_ratio: 4 in every stage [paper].
        drop_path_rate: stochastic depth, linear over all blocks (paper's "dropout", A11).
        gld_grid: side of GLD's global grid (7 -> 49 tokens, A4); gld_ratio: N (0.5 [paper]).
        local_attn: 'cswin' (default) | 'swin' (window 7, shift 3 every second block).
        global_op: 'gld' (default) | 'conv' (stride-8/4 conv).
        fusion: 'maf' (default, Fig. 2(c)) | 'local_enhanced' (Fig. 2(b)).
        embed: 'conv' (7x7/s4 stem, 3x3/s2 merging; default) | 'patch' (4x4/s4, 2x2/s2).
        pos_embed: 'dpe' (default) | 'none' for stages 3-4.
        layer_scale: None (default) or an init value for stage-3/4 LayerScale (A15).
        token_label_head: add the token-labeling auxiliary classifier (LV-ViT token labeling).
    """

    classifier_prefixes = ("head.", "aux_head.")
    no_weight_decay_keywords = ("relative_position_bias_table",)

    def __init__(self, in_chans=3, class_num=1000, embed_dims=(64, 128, 320, 512), depths=(3, 5, 8, 3),
                 num_heads=(2, 4, 10, 16), stripes=(1, 2), mlp_ratio=4.0, drop_path_rate=0.1,
                 gld_grid=7, gld_ratio=0.5, local_attn="cswin", global_op="gld", fusion="maf",
                 embed="conv", pos_embed="dpe", layer_scale=None, token_label_head=False,
                 out_indices=(0, 1, 2, 3), features_only=False, **kwargs):
        if kwargs:
            raise TypeError(f"MAFormer got unexpected arguments: {sorted(kwargs)}")
        super().__init__(in_chans, class_num, out_indices, features_only, min_input_size=1)
        if pos_embed not in ("dpe", "none"):
            raise ValueError(f"pos_embed must be 'dpe' or 'none', got {pos_embed!r}")
        self.embed_dims, self.depths = list(embed_dims), list(depths)
        self.stem = Stem(in_chans, embed_dims[0], embed)
        dpr = drop_path_rates(drop_path_rate, depths)
        reductions = (8, 4)
        stages = []
        for i in range(4):
            blocks = []
            for j in range(depths[i]):
                if i < 2:
                    blocks.append(MAFBlock(embed_dims[i], num_heads[i], stripes[i], mlp_ratio, dpr[i][j],
                                           local_attn, global_op, fusion, gld_grid, gld_ratio,
                                           reductions[i], shift=3 if j % 2 else 0))
                else:
                    blocks.append(ViTBlock(embed_dims[i], num_heads[i], mlp_ratio, dpr[i][j], pos_embed,
                                           layer_scale))
            down = Merge(embed_dims[i - 1], embed_dims[i], embed) if i > 0 else None
            use_gld = i < 2 and global_op == "gld"
            stages.append(Stage(blocks, down, gld_grid if use_gld else None,
                                int(round(gld_grid / gld_ratio)) if use_gld else None))
        self.stages = nn.LayerList(stages)
        self.feature_info = [dict(channels=int(c), stride=4 * 2 ** i) for i, c in enumerate(embed_dims)]
        self.num_features = int(embed_dims[-1])
        if features_only:
            # A16: each returned stage gets its own LayerNorm; no classifier in dense mode.
            self.out_norms = StageNorms(nn.LayerNorm, embed_dims, self.out_indices)
            self.norm = self.head = self.aux_head = None
        else:
            self.norm = nn.LayerNorm(self.num_features)
            self.head = self.classifier(class_num)
            self.aux_head = self.classifier(class_num) if token_label_head and class_num > 0 else None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(layer):
        init_weights_vit(layer)
        if isinstance(layer, nn.Conv2D):
            if layer._groups > 1:
                # PyTorch default init (what CSWin / UniFormer train with): uniform(+-1/sqrt(fan_in)).
                fan_in = int(np.prod(layer.weight.shape[1:]))
                bound = 1.0 / math.sqrt(fan_in)
                nn.initializer.Uniform(-bound, bound)(layer.weight)
            else:
                kaiming_normal_fan_out_(layer.weight)
            if layer.bias is not None:
                zeros_(layer.bias)

    # ---- backbone ------------------------------------------------------------------------
    def _stage_outputs(self, x, last=3):
        x = self.stem(x)
        outs = []
        for i in range(last + 1):
            x = self.stages[i](x)
            outs.append(x)
        return outs

    def forward_tokens(self, x):
        """Final normalised tokens [B, H/32 * W/32, C4] (classification mode)."""
        x = self.norm(self._stage_outputs(x)[-1])
        return x.reshape([x.shape[0], -1, x.shape[3]])

    def forward_features(self, x):
        self.require_classifier("forward_features")
        return self.forward_tokens(x).mean(axis=1)

    def forward(self, x):
        if self.aux_head is None or self.features_only or self.training:
            return super(MAFormer, self).forward(x)
        # Token-labeling inference (LV-ViT): cls + 0.5 * max over the dense token logits.
        self.check_input(x)
        cls_logits, aux_logits = self.forward_token_label(x)
        return cls_logits + 0.5 * aux_logits.max(axis=1)

    def forward_token_label(self, x):
        """(class logits [B, K], per-token logits [B, N, K]) for token-labeling training."""
        if self.aux_head is None:
            raise RuntimeError("build the model with token_label_head=True to use token labeling")
        tokens = self.forward_tokens(x)
        return self.head(tokens.mean(axis=1)), self.aux_head(tokens)

    def forward_pyramid(self, x):
        outs = self._stage_outputs(x, last=max(self.out_indices))
        feats = []
        for i in self.out_indices:
            y = self.out_norms.normalize(i, outs[i]) if self.features_only else outs[i]
            feats.append(y.transpose([0, 3, 1, 2]))
        return feats

    def reset_classifier(self, class_num):
        super().reset_classifier(class_num)
        if self.aux_head is not None:
            self.aux_head = self.classifier(class_num) if class_num > 0 else None
            if self.aux_head is not None:
                self.init_head(self.aux_head)


# ----------------------------------------------------------------------------------------------
# Variants (paper Table 1; heads/stripes from A1/A2)
# ----------------------------------------------------------------------------------------------
_SOURCE = "paper Table 1"
VARIANTS = {
    "MAFormer_S": Variant(dict(embed_dims=(64, 128, 320, 512), depths=(3, 5, 8, 3), num_heads=(2, 4, 10, 16),
                               drop_path_rate=0.1), reference_counts(23e6, 4.5e9, 0.03, 0.03, _SOURCE),
                          "dims 64/128/320/512, depths 3/5/8/3 (23M, 4.5G; 83.0% without TL)"),
    "MAFormer_B": Variant(dict(embed_dims=(64, 128, 320, 512), depths=(3, 8, 20, 7), num_heads=(2, 4, 10, 16),
                               drop_path_rate=0.3), reference_counts(53e6, 9.8e9, 0.05, 0.12, _SOURCE),
                          "dims 64/128/320/512, depths 3/8/20/7 (53M, 9.8G; 85.0% with TL)"),
    "MAFormer_L": Variant(dict(embed_dims=(128, 192, 448, 640), depths=(3, 8, 24, 7), num_heads=(4, 6, 14, 20),
                               drop_path_rate=0.4), reference_counts(104e6, 22.6e9, 0.05, 0.12, _SOURCE),
                          "dims 128/192/448/640, depths 3/8/24/7 (104M, 22.6G; 85.9% with TL)"),
}
register_variants(MAFormer, "maformer", PAPER, VARIANTS, globals())
