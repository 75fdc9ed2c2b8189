"""TransXNet (Lou et al., "TransXNet: Learning Both Global and Local Dynamics with a Dual Dynamic
Token Mixer for Visual Recognition", 2023), parameter for parameter the authors' PyTorch release.

Architecture (paper Sec. III, Fig. 3; details the paper omits follow the authors' code):

* stem: 7x7 stride-4 conv (no bias) + BN; downsampling: 3x3 stride-2 conv (no bias) + BN;
* block: ``x += DPE(x)`` (depthwise 7x7), ``x += LS(D-Mixer(GN(x)))``, ``x += LS(MS-FFN(GN(x)))``
  with GroupNorm(1, C) and a layer scale that has a per-channel weight *and* bias;
* D-Mixer (Sec. III-A, Eq. 1): channel halves -> IDConv (first half) and OSRA (second half),
  concatenated, then the Squeezed Token Enhancer (Eq. 4) with a residual;
* IDConv (Eq. 2): adaptive pool to KxK, two 1x1 convs give softmax-over-G weights mixing G static
  depthwise kernels (and biases) per sample;
* OSRA (Eq. 3): overlapping spatial reduction (depthwise conv k=sr+3 stride sr + BN + GELU, then
  depthwise 1x1 + BN), a 3x3 depthwise local refinement with residual, and a relative position
  term per stage (learned at 224x224, resized bicubically on the (queries, keys) plane when the
  attention matrix has another size, as the authors do);
* MS-FFN (Sec. III-B): 1x1 up, GELU, BN, depthwise k=1/3/5/7 on channel quarters with residual,
  GELU, BN, 1x1 down + BN;
* head: GroupNorm, global average pool, classifier (the authors' 1x1 conv is a Linear here).

Dense mode (``features_only=True``) mirrors the authors' ``fork_feat``: each returned stage
passes through its own GroupNorm(1, C); any input size works (every conv rounds up).

``re_parameterize()`` gives the inference form (the same function in fewer, faster ops; every
export uses it; docs/deploy.md, docs/benchmarks.md):

* IDConv becomes :class:`IDConvDeploy`: its per-sample depthwise conv runs as a static one-hot
  row conv, a batched matmul and a column sum (a product with a constant banded matrix at static
  heights up to 64, else a one-hot column conv). A conv with computed kernels cannot take a
  dynamic batch, and Paddle Inference's oneDNN conv would reuse the first call's kernel. Its
  kernels and biases come from one (K+1)x(K+1) matrix pooling and one ``proj`` pass; with two
  groups a sigmoid replaces the softmax.
* The first layer scale becomes a depthwise 1x1 conv; MS-FFN's four depthwise convs and their
  residual become one 7x7 conv, and its BatchNorms and the second layer scale fold into
  neighbouring convs; the D-Mixer's BatchNorms fold into its 1x1 convs; OSRA's scale folds into
  q; every conv + BatchNorm pair becomes one conv.

Parameter names differ from the official ones; :func:`convert_official_state_dict` maps every
official key (registered as the family converter).
"""
import functools
import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..layers import (DropPath, ConvBN, ConvBNAct, DepthwiseConv2D, DepthwiseConvBN, DepthwiseConvBNAct, GELU,
                      PointwiseConv2D, Scale, adaptive_avg_pool2d_matmul, affine_as_depthwise_conv, batch_norm_affine,
                      bicubic_resize,
                      conv2d_with, depthwise_conv2d, embed_kernel, fold_into_conv1x1, matmul_any_contraction,
                      per_sample_depthwise_conv2d, static_token_count, trunc_normal_, zeros_, ones_)
from ..registry import register_converter
from .base import HybridBackbone, StageNorms, Variant, drop_path_rates, reference_counts, register_variants

__all__ = ["TransXNet", "TransXNet_T", "TransXNet_S", "TransXNet_B",
           "convert_official_state_dict", "resize_relative_position"]

PAPER = "TransXNet: Learning Both Global and Local Dynamics with a Dual Dynamic Token Mixer (arXiv 2310.19380)"

SR_RATIOS = (8, 4, 2, 1)


def resize_relative_position(pos, num_queries, num_keys):
    """Resize a ``[1, heads, N, Nk]`` relative position term to ``[1, heads, num_queries,
    num_keys]`` exactly like ``F.interpolate(pos, (num_queries, num_keys), mode='bicubic',
    align_corners=False)`` in the authors' code (a resize of the flattened token plane)."""
    return bicubic_resize(pos, num_queries, num_keys)


class LayerScale(nn.Layer):
    """Per-channel affine ``x * weight + bias`` (the authors' LayerScale has a bias too)."""

    def __init__(self, dim, init_value=1e-5):
        super().__init__()
        self.weight = self.create_parameter([dim, 1, 1], default_initializer=nn.initializer.Constant(init_value))
        self.bias = self.create_parameter([dim, 1, 1], default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x):
        return x * self.weight + self.bias

    def deploy_twin(self):
        """Inference form: the same affine map as a depthwise 1x1 conv (several times faster in
        oneDNN, which also fuses the residual add after it)."""
        return affine_as_depthwise_conv(self.weight.reshape([-1]), self.bias.reshape([-1]))


#: :class:`IDConvDeploy` runs the column sum as a matrix product (:func:`column_shift_matrix`) at
#: static heights up to this; taller maps (and dynamic heights) keep the one-hot Kx1 conv.
COLUMN_MATMUL_MAX_HEIGHT = 64


@functools.lru_cache(maxsize=64)
def column_shift_matrix(height, kernel_size):
    """The ``[H, (K+1)*H]`` 0/1 matrix ``S`` with ``(S @ M)[y] = sum_i M[i, y + i - K//2] +
    M[K, y]`` for ``M`` laid out ``[(K+1)*H, W]`` (``K`` row-mixed copies, then the bias map):
    the one-hot Kx1 conv of :meth:`IDConv.conv_separable` with zero padding, as a product."""
    k = kernel_size
    shift = np.zeros((height, (k + 1) * height), np.float32)
    for y in range(height):
        for i in range(k):
            src = y + i - k // 2
            if 0 <= src < height:
                shift[y, i * height + src] = 1.0
        shift[y, k * height + y] = 1.0
    return shift


class IDConv(nn.Layer):
    """Input-dependent depthwise convolution (Sec. III-A-1, Eq. 2): ``num_groups`` static KxK
    depthwise kernels mixed per sample and per kernel position by softmax weights predicted
    from the input pooled to KxK; the biases are mixed from globally pooled weights."""

    def __init__(self, dim, kernel_size=7, num_groups=2, reduction_ratio=4):
        super().__init__()
        if num_groups < 2:
            raise ValueError(f"IDConv needs at least 2 attention groups, got {num_groups}")
        self.dim = dim
        self.num_groups = num_groups
        self.kernel_size = kernel_size
        self.weight = self.create_parameter([num_groups, dim, kernel_size, kernel_size])
        self.bias = self.create_parameter([num_groups, dim])
        trunc_normal_(self.weight)
        trunc_normal_(self.bias)
        self.proj = nn.Sequential(
            ConvBNAct(dim, dim // reduction_ratio, 1, act_layer=GELU),
            PointwiseConv2D(dim // reduction_ratio, dim * num_groups),
        )

    def dynamic_kernels(self, x):
        """Per-sample kernels ``[B, C, K, K]`` and biases ``[B, C]``."""
        k, g, c = self.kernel_size, self.num_groups, self.dim
        attn = self.proj(F.adaptive_avg_pool2d(x, k)).reshape([0, g, c, k, k])
        weight = (F.softmax(attn, axis=1) * self.weight.unsqueeze(0)).sum(axis=1)
        attn_b = self.proj(x.mean(axis=[2, 3], keepdim=True)).reshape([0, g, c])
        bias = (F.softmax(attn_b, axis=1) * self.bias.unsqueeze(0)).sum(axis=1)
        return weight, bias

    def forward(self, x):
        return self.conv_grouped(x, *self.dynamic_kernels(x))

    def conv_grouped(self, x, weight, bias):
        """The per-sample depthwise conv as one grouped conv over the batch folded into channels
        (the authors' form, and the fastest in eager mode). The group count is the batch size
        times C, so tracing needs a static batch."""
        b, c, k = x.shape[0], self.dim, self.kernel_size
        if not (isinstance(b, int) and b > 0):
            raise RuntimeError("IDConv convolves with per-sample kernels, which needs a static batch size to "
                               "trace; trace the inference form instead (model.re_parameterize(), or "
                               "ppvision_hybrid.export.export_inference_model)")
        out = depthwise_conv2d(x.reshape([1, b * c, 0, 0]), weight.reshape([b * c, 1, k, k]),
                               bias=bias.reshape([-1]), padding=k // 2)
        return out.reshape([b, c, 0, 0])

    def deploy_twin(self):
        return IDConvDeploy(self)


class IDConvDeploy(nn.Layer):
    """IDConv's inference form (:meth:`IDConv.deploy_twin`): in saved graphs the same function
    with only static conv kernels (:meth:`conv_separable`), so it traces with a dynamic batch and
    runs right in Paddle Inference, whose oneDNN conv caches its kernel per input shape and would
    silently reuse the first call's computed kernel on every later call (docs/deploy.md, "oneDNN
    on Paddle 3.3.1"); in eager mode :func:`~ppvision_hybrid.layers.per_sample_depthwise_conv2d`
    runs the authors' grouped form on the fast kernel instead.

    :meth:`dynamic_mixer` computes :meth:`IDConv.dynamic_kernels` in fewer ops, as one
    ``[B*C, K+1, K+1]`` matrix per sample and channel: the KxK kernel at ``[:K, :K]``, the bias at
    ``[K, K]``, zeros elsewhere. One pooling gives the KxK bins and the global mean (at ``[K, K]``
    of a ``(K+1)x(K+1)`` map); the 1x1 convs of ``proj`` act per pixel, so one pass serves both;
    one softmax over the groups and one product with a table holding the static kernels and
    biases at those places (precomputed) mix both together. With two groups the softmax is a
    sigmoid of the logits' difference, which one 1x1 conv computes directly:
    ``T1 + sigmoid(a0 - a1) * (T0 - T1)``.
    """

    def __init__(self, idconv):
        super().__init__()
        k, g, c = idconv.kernel_size, idconv.num_groups, idconv.dim
        self.dim, self.kernel_size, self.num_groups = c, k, g
        self.hidden = idconv.proj[0].deploy_twin()  # 1x1 conv (its BatchNorm folded) + GELU
        table = embed_kernel(idconv.weight, k + 1, 0) + embed_kernel(idconv.bias.reshape([g, c, 1, 1]), k + 1, k)
        logits = idconv.proj[1]
        if g == 2:
            weight, bias = logits.weight, logits.bias
            self.logits = conv2d_with(weight[:c] - weight[c:], bias[:c] - bias[c:])
            self.register_buffer("table", table[1])                     # T1
            self.register_buffer("table_delta", table[0] - table[1])    # T0 - T1
        else:
            self.logits = logits
            self.register_buffer("table", table)
        # the static one-hot kernels of conv_separable
        eye = paddle.eye(k)
        self.register_buffer("row_kernel", paddle.concat([eye, paddle.zeros([1, k])]).reshape([k + 1, 1, 1, k]))
        self.register_buffer("row_bias", paddle.concat([paddle.zeros([k]), paddle.ones([1])]))
        self.register_buffer("col_kernel", paddle.concat([eye, eye[k // 2:k // 2 + 1]]).reshape([1, k + 1, k, 1]))

    def forward(self, x):
        # the dispatch point picks the form: eager, the authors' grouped conv on the fast kernel;
        # saved graphs, conv_separable
        return per_sample_depthwise_conv2d(x, self.dynamic_mixer(x), self.conv_separable)

    def dynamic_mixer(self, x):
        """The ``[B*C, K+1, K+1]`` kernel-and-bias matrices described in the class docstring."""
        k, g, c = self.kernel_size, self.num_groups, self.dim
        hidden = self.hidden(adaptive_avg_pool2d_matmul(x, k, append_mean=True))  # [B, C/r, K+1, K+1]
        if g == 2:
            mixed = self.table + F.sigmoid(self.logits(hidden)) * self.table_delta   # [B, C, K+1, K+1]
        else:
            attn = self.logits(hidden).reshape([0, g, c, k + 1, k + 1])
            mixed = (F.softmax(attn, axis=1) * self.table.unsqueeze(0)).sum(axis=1)
        # The reshape hands oneDNN's matmul a plain-layout copy of the conv output, which it
        # otherwise misreads (docs/deploy.md, "oneDNN on Paddle 3.3.1").
        return mixed.reshape([-1, k + 1, k + 1])

    def conv_separable(self, x, mixer):
        """The per-sample depthwise KxK conv with only static conv kernels and the per-sample part
        as a batched matmul. Each channel is its own 1-channel image: a one-hot 1xK conv lays out
        its K horizontal neighbours as K channels, the KxK per-sample kernel mixes them (row i of
        the kernel gives output channel i), and the column sum adds output channel i from i rows
        away: a product with :func:`column_shift_matrix` for static heights up to
        ``COLUMN_MATMUL_MAX_HEIGHT``, else a one-hot Kx1 conv. 7x (not 49x, as unfold) the conv's
        memory, and every step multi-threaded in oneDNN. ``mixer`` is :meth:`dynamic_mixer`'s
        ``[B*C, K+1, K+1]``: a static channel of ones after the K shifted copies meets the bias
        at ``[K, K]``, so the matmul's extra output channel is the bias map, which the column sum
        adds unshifted."""
        c, k = self.dim, self.kernel_size
        h, w = x.shape[2], x.shape[3]
        rows = F.conv2d(x.reshape([-1, 1, h, w]), self.row_kernel, bias=self.row_bias, padding=[0, k // 2])
        mixed = paddle.matmul(mixer, rows.reshape([0, k + 1, -1]))                    # [B*C, K+1, H*W]
        if isinstance(h, int) and 0 < h <= COLUMN_MATMUL_MAX_HEIGHT:
            # A static height: the column sum as one product with a constant [H, (K+1)*H] 0/1
            # matrix, straight to [B, C, H, W] (oneDNN runs the Kx1 conv's single output channel
            # slowly, docs/benchmarks.md); the product does (K+1)*H multiply-adds per output
            # instead of K+1, so large (dense-task) maps keep the conv.
            shift = paddle.to_tensor(column_shift_matrix(h, k), dtype=x.dtype)
            return paddle.matmul(shift, mixed.reshape([-1, c, (k + 1) * h, w]))
        out = F.conv2d(mixed.reshape([-1, k + 1, h, w]), self.col_kernel, padding=[k // 2, 0])
        return out.reshape([-1, c, h, w])


class OSRA(nn.Layer):
    """Overlapping Spatial Reduction Attention (Sec. III-A-2, Eq. 3) on NCHW maps."""

    def __init__(self, dim, num_heads=1, sr_ratio=1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_scale = Scale(self.head_dim ** -0.5)
        self.q = PointwiseConv2D(dim, dim)
        self.kv = PointwiseConv2D(dim, dim * 2)
        if sr_ratio > 1:
            k = sr_ratio + 3  # "kernel size equals the stride plus 3": overlapping patches
            self.sr = nn.Sequential(
                DepthwiseConvBNAct(dim, k, stride=sr_ratio, padding=k // 2),
                DepthwiseConvBN(dim, 1),
            )
        else:
            self.sr = nn.Identity()
        self.local_conv = DepthwiseConv2D(dim, 3, padding=1)

    def forward(self, x, relative_pos):
        h, w = x.shape[2], x.shape[3]
        nh, d = self.num_heads, self.head_dim
        q = self.q(x).reshape([0, nh, d, -1])                       # [B, h, d, N]
        kv = self.sr(x)
        kv = self.kv(self.local_conv(kv) + kv).reshape([0, 2 * nh, d, static_token_count(kv)])
        k, v = paddle.split(kv, 2, axis=1)                          # [B, h, d, Nk] each; one op, not two slices
        attn = self.attn_scale(paddle.matmul(q, k, transpose_x=True))  # [B, h, N, Nk]
        if relative_pos is not None:  # already resized to [1, heads, N, Nk] by the stage
            attn = attn + relative_pos
        attn = F.softmax(attn, axis=-1)
        out = matmul_any_contraction(v, attn, transpose_y=True)     # [B, h, d, N]; Nk is 1 on a 1x1 map
        return out.reshape([0, self.dim, h, w])

    def deploy_twin(self):
        """Inference form: the attention scale folded into q's weights."""
        scale = self.attn_scale.value
        self.q = conv2d_with(self.q.weight * scale, self.q.bias * scale, like=self.q)
        self.attn_scale = nn.Identity()
        return self


class DMixer(nn.Layer):
    """Dual Dynamic Token Mixer (Sec. III-A, Eq. 1) followed by the Squeezed Token Enhancer
    (Eq. 4). As in the authors' code, IDConv takes the first channel half and OSRA the second."""

    def __init__(self, dim, kernel_size=7, num_groups=2, num_heads=1, sr_ratio=1, reduction_ratio=8):
        super().__init__()
        if dim % 2:
            raise ValueError(f"D-Mixer needs an even channel count, got {dim}")
        self.half = dim // 2
        self.local_unit = IDConv(dim // 2, kernel_size=kernel_size, num_groups=num_groups)
        self.global_unit = OSRA(dim // 2, num_heads=num_heads, sr_ratio=sr_ratio)
        inner = max(16, dim // reduction_ratio)
        # Indices follow the authors' nn.Sequential (so the converter is a rename of BN stats).
        self.proj = nn.Sequential(
            DepthwiseConv2D(dim, 3, padding=1), GELU(), nn.BatchNorm2D(dim),
            PointwiseConv2D(dim, inner), GELU(), nn.BatchNorm2D(inner),
            PointwiseConv2D(inner, dim), nn.BatchNorm2D(dim),
        )

    def forward(self, x, relative_pos):
        x1, x2 = paddle.split(x, 2, axis=1)
        x = paddle.concat([self.local_unit(x1), self.global_unit(x2, relative_pos)], axis=1)
        return self.proj(x) + x

    def deploy_twin(self):
        """Inference form: the BatchNorms after the GELUs and the last one folded into the 1x1
        convs (a BatchNorm before a 1x1 conv folds exactly; before the padded 3x3 it would not)."""
        p = self.proj
        self.proj = nn.Sequential(
            p[0], p[1], fold_into_conv1x1(p[3], before=batch_norm_affine(p[2])), p[4],
            fold_into_conv1x1(p[6], before=batch_norm_affine(p[5]), after=[batch_norm_affine(p[7])]))
        return self


class MultiScaleDWConv(nn.Layer):
    """Depthwise convs with kernels 1/3/5/7 on channel splits (the first split takes the
    remainder), concatenated (Sec. III-B)."""

    def __init__(self, dim, scales=(1, 3, 5, 7)):
        super().__init__()
        n = len(scales)
        self.channels = [dim - dim // n * (n - 1)] + [dim // n] * (n - 1)
        self.proj = nn.LayerList([DepthwiseConv2D(c, k, padding=k // 2) for c, k in zip(self.channels, scales)])

    def forward(self, x):
        parts = paddle.split(x, self.channels, axis=1)
        return paddle.concat([conv(p) for conv, p in zip(self.proj, parts)], axis=1)

    def merged_kernel(self, with_identity=False):
        """One depthwise kernel (and bias) for all channels: each split's kernel zero-padded to the
        largest size, plus, with ``with_identity``, 1 at the centre (``conv(x) + x``). The same
        function as :meth:`forward` as one conv instead of a split, four convs and a concat."""
        size = max(conv._kernel_size[0] for conv in self.proj)
        weight = paddle.concat([embed_kernel(conv.weight, size, (size - conv._kernel_size[0]) // 2)
                                for conv in self.proj])
        if with_identity:
            weight = weight + embed_kernel(paddle.ones([weight.shape[0], 1, 1, 1], weight.dtype), size, size // 2)
        return weight, paddle.concat([conv.bias for conv in self.proj])


class MSFFN(nn.Layer):
    """Multi-scale feed-forward network (Sec. III-B, Fig. 5c)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Sequential(nn.Conv2D(dim, hidden, 1, bias_attr=False), GELU(), nn.BatchNorm2D(hidden))
        self.dwconv = MultiScaleDWConv(hidden)
        self.act = GELU()
        self.norm = nn.BatchNorm2D(hidden)
        self.fc2 = nn.Sequential(nn.Conv2D(hidden, dim, 1, bias_attr=False), nn.BatchNorm2D(dim))

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(self.dwconv(x) + x)
        return self.fc2(self.norm(x))

    def deploy_twin(self, layer_scale=None):
        """Inference form, with the block's ``layer_scale`` (if given) folded in: fc1's BN (after a
        GELU, so it cannot fold into fc1) as a depthwise 1x1 conv; the multi-scale convs and
        their residual as one depthwise conv (GELU fused in oneDNN); the BN after that GELU,
        fc2's BN and the layer scale folded into fc2's conv."""
        weight, bias = self.dwconv.merged_kernel(with_identity=True)
        after = [batch_norm_affine(self.fc2[1])]
        if layer_scale is not None:
            after.append((layer_scale.weight.reshape([-1]), layer_scale.bias.reshape([-1])))
        return nn.Sequential(
            self.fc1[0], self.fc1[1], affine_as_depthwise_conv(*batch_norm_affine(self.fc1[2])),
            conv2d_with(weight, bias, padding=weight.shape[-1] // 2, groups=weight.shape[0]), GELU(),
            fold_into_conv1x1(self.fc2[0], before=batch_norm_affine(self.norm), after=after))


class TransXNetBlock(nn.Layer):
    """DPE + D-Mixer + MS-FFN with GroupNorm(1, C) pre-norms and biased layer scales."""

    def __init__(self, dim, num_heads, num_groups, sr_ratio, mlp_ratio, kernel_size=7,
                 drop_path=0.0, layer_scale_init_value=1e-5):
        super().__init__()
        self.pos_embed = DepthwiseConv2D(dim, 7, padding=3)
        self.norm1 = nn.GroupNorm(1, dim, epsilon=1e-5)
        self.token_mixer = DMixer(dim, kernel_size=kernel_size, num_groups=num_groups,
                                  num_heads=num_heads, sr_ratio=sr_ratio)
        self.norm2 = nn.GroupNorm(1, dim, epsilon=1e-5)
        self.mlp = MSFFN(dim, int(dim * mlp_ratio))
        self.layer_scale_1 = LayerScale(dim, layer_scale_init_value)
        self.layer_scale_2 = LayerScale(dim, layer_scale_init_value)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, relative_pos):
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.layer_scale_1(self.token_mixer(self.norm1(x), relative_pos)))
        return x + self.drop_path(self.layer_scale_2(self.mlp(self.norm2(x))))

    def deploy_twin(self):
        """Inference form: the second layer scale folded into MS-FFN's last conv."""
        self.mlp = self.mlp.deploy_twin(layer_scale=self.layer_scale_2)
        self.layer_scale_2 = nn.Identity()
        return self


class TransXNet(HybridBackbone):
    """TransXNet backbone and classifier.

    Args:
        depths, dims, num_heads, num_groups, mlp_ratios: per-stage settings (Table I).
        img_size: size the relative position terms are learned at (224 in every release); other
            input sizes resize them bicubically, as the authors do.
        drop_path_rate: stochastic depth, linear over all blocks (0.1 / 0.2 / 0.4 for T / S / B).
        features_only: return the GroupNorm-ed maps of ``out_indices`` (the authors' dense mode).
    """

    classifier_prefixes = ("head.",)
    # The authors train with timm's optimizer factory, which exempts every ``*.bias`` parameter;
    # IDConv's [G, C] and the layer scales' [C, 1, 1] biases are not 1-D, so the YAML's one-dim
    # rule alone would decay them.
    no_weight_decay_keywords = (".bias",)

    def __init__(self, depths, dims, num_heads, num_groups, mlp_ratios, sr_ratios=SR_RATIOS,
                 kernel_size=7, img_size=224, in_chans=3, class_num=1000, drop_path_rate=0.0,
                 layer_scale_init_value=1e-5, out_indices=(0, 1, 2, 3), features_only=False,
                 **kwargs):
        if kwargs:
            raise TypeError(f"TransXNet got unexpected arguments: {sorted(kwargs)}")
        super().__init__(in_chans, class_num, out_indices, features_only)
        self.dims = tuple(dims)
        self.feature_info = [dict(channels=c, stride=4 * 2 ** i) for i, c in enumerate(dims)]
        self.num_features = dims[-1]

        self.patch_embed = ConvBN(in_chans, dims[0], 7, stride=4, padding=3)
        # Relative position terms [1, heads, N, Nk] for an img_size input (conv sides round up).
        img_hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        side = [math.ceil(s / 4) for s in img_hw]
        pos = []
        for i in range(4):
            n = side[0] * side[1]
            nk = math.ceil(side[0] / sr_ratios[i]) * math.ceil(side[1] / sr_ratios[i])
            pos.append(self.create_parameter([1, num_heads[i], n, nk], default_initializer=zeros_))
            side = [math.ceil(s / 2) for s in side]
        self.relative_pos_enc = nn.ParameterList(pos)
        self.sr_ratios = tuple(sr_ratios)

        dpr = drop_path_rates(drop_path_rate, depths)
        self.stages = nn.LayerList()
        self.downsamples = nn.LayerList()
        for i in range(4):
            self.stages.append(nn.LayerList([
                TransXNetBlock(dims[i], num_heads[i], num_groups[i], sr_ratios[i], mlp_ratios[i],
                               kernel_size=kernel_size, drop_path=dpr[i][j],
                               layer_scale_init_value=layer_scale_init_value)
                for j in range(depths[i])]))
            if i < 3:
                self.downsamples.append(ConvBN(dims[i], dims[i + 1], 3, stride=2, padding=1))

        if self.features_only:
            # One GroupNorm per returned stage, named by stage (the authors' norm0/2/4/6).
            self.out_norms = StageNorms(lambda c: nn.GroupNorm(1, c, epsilon=1e-5), dims, self.out_indices)
        else:
            self.head_norm = nn.GroupNorm(1, dims[-1], epsilon=1e-5)
            self.head = self.classifier(class_num)
        self._init_weights()

    def _init_weights(self):
        # The authors' init: trunc-normal(0.02) conv weights, zero conv biases, unit norms.
        for layer in self.sublayers():
            if isinstance(layer, (nn.Conv2D, nn.Linear)):
                trunc_normal_(layer.weight)
                if layer.bias is not None:
                    zeros_(layer.bias)
            elif isinstance(layer, (nn.GroupNorm, nn.BatchNorm2D)):
                ones_(layer.weight)
                zeros_(layer.bias)

    def _run_stages(self, x, last_stage):
        x = self.patch_embed(x)
        outs = []
        for i in range(last_stage + 1):
            if i > 0:
                x = self.downsamples[i - 1](x)
            pos = self._stage_relative_pos(i, x)
            for block in self.stages[i]:
                x = block(x, pos)
            outs.append(x)
        return outs

    def _stage_relative_pos(self, i, x):
        """Stage ``i``'s relative position term for a map like ``x``: the learned one when the
        attention matrix has its size, else resized bicubically (once per stage; the authors
        resize in every block, with the same result)."""
        pos = self.relative_pos_enc[i]
        h, w = x.shape[2], x.shape[3]
        if not (isinstance(h, int) and isinstance(w, int) and h >= 0 and w >= 0):
            h, w = paddle.shape(x)[2], paddle.shape(x)[3]  # traced with dynamic H/W
        sr = self.sr_ratios[i]
        if sr > 1:  # output size of the reduction conv: kernel sr + 3, padding (sr + 3) // 2
            k = sr + 3
            kh, kw = (h + 2 * (k // 2) - k) // sr + 1, (w + 2 * (k // 2) - k) // sr + 1
        else:
            kh, kw = h, w
        n, nk = h * w, kh * kw
        if isinstance(n, int) and (n, nk) == tuple(pos.shape[2:]):
            return pos
        return resize_relative_position(pos, n, nk)

    def forward_features(self, x):
        self.require_classifier("forward_features")
        x = self._run_stages(x, 3)[-1]
        return self.head_norm(x).mean(axis=[2, 3])

    def forward_pyramid(self, x):
        outs = self._run_stages(x, max(self.out_indices))
        if self.features_only:
            return [self.out_norms.normalize(i, outs[i]) for i in self.out_indices]
        return [outs[i] for i in self.out_indices]


# ---- checkpoint conversion ----------------------------------------------------------------
def _official_to_ours_name(key):
    """Our parameter name for one official key (None for keys that are dropped)."""
    if key.endswith("num_batches_tracked"):
        return None
    k = key
    k = k.replace(".running_mean", "._mean").replace(".running_var", "._variance")
    if k.startswith("patch_embed.proj.conv."):
        return "patch_embed.0." + k[len("patch_embed.proj.conv."):]
    if k.startswith("patch_embed.proj.bn."):
        return "patch_embed.1." + k[len("patch_embed.proj.bn."):]
    if k.startswith("network."):
        parts = k.split(".")
        idx = int(parts[1])
        rest = ".".join(parts[2:])
        if idx % 2 == 1:  # downsampling PatchEmbed between stages
            rest = rest.replace("proj.conv.", "0.").replace("proj.bn.", "1.")
            return f"downsamples.{idx // 2}.{rest}"
        rest = (rest.replace("local_unit.proj.0.conv.", "local_unit.proj.0.0.")
                    .replace("local_unit.proj.0.bn.", "local_unit.proj.0.1.")
                    .replace("global_unit.sr.0.conv.", "global_unit.sr.0.0.")
                    .replace("global_unit.sr.0.bn.", "global_unit.sr.0.1.")
                    .replace("global_unit.sr.1.conv.", "global_unit.sr.1.0.")
                    .replace("global_unit.sr.1.bn.", "global_unit.sr.1.1."))
        return f"stages.{idx // 2}.{rest}"
    if k.startswith("classifier.0."):
        return "head_norm." + k[len("classifier.0."):]
    if k.startswith("classifier.2."):
        return "head." + k[len("classifier.2."):]
    if k.startswith("norm") and k.split(".")[0][4:].isdigit():
        idx = int(k.split(".")[0][4:])
        return f"out_norms.{idx // 2}." + k.split(".", 1)[1]
    if k.startswith("relative_pos_enc."):
        return k
    return False  # unknown key


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor, if the caller loaded with torch
        value = value.detach().cpu().numpy()
    elif isinstance(value, paddle.Tensor):
        value = value.numpy()
    return np.asarray(value)


_STATE_NAMES = {}


def _our_state_names(model_name, dense):
    """Parameter and buffer names of ``model_name`` (built once per variant and mode)."""
    key = (model_name, dense)
    if key not in _STATE_NAMES:
        from ..registry import create_model
        with paddle.LazyGuard():  # names only: skip initialising the weights
            model = create_model(model_name, features_only=True) if dense else create_model(model_name)
        _STATE_NAMES[key] = frozenset(model.state_dict())
    return _STATE_NAMES[key]


@register_converter("transxnet")
def convert_official_state_dict(model_name, state_dict):
    """Map the authors' TransXNet state dict (official key -> array) to ours.

    Conv weights copy as they are; the 1x1-conv classifier becomes a Linear ([N, C, 1, 1] ->
    [C, N]); layer-scale weights [C, 1, 1, 1] -> [C, 1, 1] and biases [C] -> [C, 1, 1]; BN
    running statistics become ``_mean`` / ``_variance``; ``num_batches_tracked`` is dropped.
    Unknown keys raise a ``KeyError`` naming them (nothing is silently ignored).
    """
    dense = any(k.startswith("norm") and k.split(".")[0][4:].isdigit() for k in state_dict)
    expected = _our_state_names(model_name, dense)
    out, unknown = {}, []
    for key, value in state_dict.items():
        name = _official_to_ours_name(key)
        if name is None:
            continue
        if name is False or name not in expected:
            unknown.append(key)
            continue
        arr = _to_numpy(value)
        if name == "head.weight":
            if arr.ndim != 4:
                raise ValueError(f"{key}: expected a [classes, C, 1, 1] conv weight, got {list(arr.shape)}")
            arr = arr.reshape(arr.shape[0], arr.shape[1]).T
        elif ".layer_scale_" in name:
            arr = arr.reshape(-1, 1, 1)
        out[name] = np.ascontiguousarray(arr)
    if unknown:
        raise KeyError(f"{model_name}: {len(unknown)} checkpoint keys have no counterpart in "
                       f"TransXNet: {unknown[:10]}")
    return out


# ---- registered variants ------------------------------------------------------------------
def _variant(depths, dims, num_heads, num_groups, mlp_ratios, drop_path_rate, params, macs, doc):
    return Variant(dict(depths=depths, dims=dims, num_heads=num_heads, num_groups=num_groups,
                        mlp_ratios=mlp_ratios, drop_path_rate=drop_path_rate),
                   reference_counts(params, macs, source="authors' PyTorch release, measured at 224x224"),
                   doc)


VARIANTS = {
    # Table I of the paper; sr ratios 8/4/2/1 and IDConv kernel 7 in every variant.
    "TransXNet_T": _variant((3, 3, 9, 3), (48, 96, 224, 448), (1, 2, 4, 8), (2, 2, 2, 2), (4, 4, 4, 4), 0.1,
                            12.835e6, 1.807e9, "12.8 M params, 1.8 GMACs, 81.6% ImageNet top-1 (Table II)"),
    "TransXNet_S": _variant((4, 4, 12, 4), (64, 128, 320, 512), (1, 2, 5, 8), (2, 2, 3, 4), (6, 6, 4, 4), 0.2,
                            26.864e6, 4.607e9, "26.9 M params, 4.5 GMACs, 83.8% ImageNet top-1 (Table II)"),
    "TransXNet_B": _variant((4, 4, 21, 4), (76, 152, 336, 672), (2, 4, 8, 16), (2, 2, 4, 4), (8, 8, 4, 4), 0.4,
                            48.009e6, 8.353e9, "48.0 M params, 8.3 GMACs, 84.6% ImageNet top-1 (Table II)"),
}
register_variants(TransXNet, "transxnet", PAPER, VARIANTS, globals())
