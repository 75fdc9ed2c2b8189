"""DualFormer: Dual Path Transformer with Partition Attention (Jiang et al., arXiv 2305.14768).

No public code exists; this is a re-implementation from the paper. Each of the paper's gaps is
resolved by a numbered assumption, marked ``[A<n>]`` below and listed in
``docs/models/dualformer.md``.

Layout: the whole network stays NCHW. Per-pixel linear maps (FFN, projections, W_v) are 1x1
convolutions, so the only layout transposes are the two inside each channel LayerNorm (faster
than reducing over the channel axis, docs/benchmarks.md); the multi-head partition attention (MHPA, Sec. 3.2)
works on ``(B, heads, d_h, m)`` tokens, which is a free reshape of NCHW.

Partition-wise attention without sorting: the LSH partition of every token is turned into a
one-hot matrix ``P`` of shape ``(B, heads, K, m)`` with ``K = 2**bits`` (4 by default), and every
per-partition reduction/scatter is a matmul with ``P``. Each costs ``O(m * K * d)``, so MHPA is
linear in the number of tokens, needs no argsort/gather (cheap on CPU, export-safe at dynamic
H/W) and every product is visible to the MAC counter.
"""
import functools

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..layers import (ConvBN, ConvBNAct, DepthwiseConv2D, DepthwiseConvBN, DepthwiseConvBNAct, DropPath, GELU, PointwiseConv2D,
                      pad_to_multiple, trunc_normal_, zeros_, ones_)
from ..layers import kaiming_normal_fan_out_, matmul_any_contraction, static_token_count
from .base import HybridBackbone, StageNorms, Variant, drop_path_rates, reference_counts, register_variants

__all__ = ["DualFormer", "PartitionAttention", "DualBlock", "DualFormer_T", "DualFormer_XS",
           "DualFormer_S", "DualFormer_B"]

PAPER = "Dual Path Transformer with Partition Attention, arXiv 2305.14768"


class ChannelLayerNorm(nn.Layer):
    """LayerNorm over the channel axis of an NCHW map (the token LayerNorm of a transformer).

    Implemented as NCHW -> NHWC, ``F.layer_norm``, back: Paddle's CPU kernels run that much faster
    than a reduction over axis 1 (docs/benchmarks.md, "Measurements behind the model code").
    ``affine=False`` gives a parameter-free normaliser (used on the pyramid outputs).
    """

    def __init__(self, channels, epsilon=1e-6, affine=True):
        super().__init__()
        self.epsilon = epsilon
        self.channels = channels
        if affine:
            self.weight = self.create_parameter([channels], default_initializer=nn.initializer.Constant(1.0))
            self.bias = self.create_parameter([channels], is_bias=True,
                                              default_initializer=nn.initializer.Constant(0.0))
        else:
            self.weight = None
            self.bias = None

    def forward(self, x):
        x = F.layer_norm(x.transpose([0, 2, 3, 1]), [self.channels], self.weight, self.bias,
                         self.epsilon)
        return x.transpose([0, 3, 1, 2])

    def extra_repr(self):
        return f"{self.channels}, epsilon={self.epsilon}, affine={self.weight is not None}"


class MBConv(nn.Sequential):
    """MobileNetV2 inverted residual without its inner skip (Sec. 3.3; [A2]): 1x1 expand (x6),
    depthwise 3x3, 1x1 project; BN after each conv, GELU after the first two. ``use_dw=False``
    drops the depthwise conv (Table 5 ablation)."""

    def __init__(self, channels, expansion=6, use_dw=True):
        hidden = channels * expansion
        layers = [ConvBNAct(channels, hidden, 1, act_layer=GELU)]
        if use_dw:
            layers.append(DepthwiseConvBNAct(hidden, 3, act_layer=GELU))
        layers.append(ConvBN(hidden, channels, 1))
        super().__init__(*layers)


class PartitionAttention(nn.Layer):
    """Multi-Head Partition-wise Attention (MHPA), Sec. 3.2 / Fig. 3.

    1. Down-sample by ``k`` with a depthwise k x k / stride-k conv + BN ("as early stage"; [A8]).
    2. Partition generator: per head, ``bits`` fixed random hyperplanes (a buffer, saved in the
       checkpoint, never trained; eqs. 4-5, [A9]) hash each token to one of ``K = 2**bits``
       partitions. No gradient flows through the assignment.
    3. Intra-partition attention (eqs. 6-7, [A10]): per channel softmax of the token features
       over the token's own partition, times the partition size (weights average 1), times the
       transformed features ``x~ = W_v x``.
    4. Inter-partition attention (eqs. 8-9, [A11]): partition means of ``x~``, an SE-like
       importance per partition normalised over the (non-empty) partitions, scattered back.
    5. Concat intra/inter, Conv1x1 + BN ("simple convolution layer"; [A12]), channel-to-spatial
       (Conv1x1 D -> D*k*k + pixel shuffle; [A13]), crop the padding, skip with the input.

    Any input size works: the map is zero-padded to a multiple of ``k`` and cropped back.
    All work is matmuls with the one-hot partition matrix: cost linear in tokens.
    """

    def __init__(self, dim, num_heads=1, down_rate=1, hash_bits=2, se_ratio=4, intra=True,
                 inter=True, intra_mode="mean1"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if not (intra or inter):
            raise ValueError("at least one of intra / inter partition attention is needed")
        if intra_mode not in ("mean1", "literal", "pooled"):
            raise ValueError(f"intra_mode must be 'mean1', 'literal' or 'pooled', got {intra_mode!r}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.down_rate = down_rate
        self.hash_bits = hash_bits
        self.num_partitions = 2 ** hash_bits
        self.use_intra, self.use_inter, self.intra_mode = intra, inter, intra_mode

        self.down = DepthwiseConvBN(dim, down_rate, stride=down_rate, padding=0) if down_rate > 1 else None
        self.value = PointwiseConv2D(dim, dim)  # "an additional lightweight linear layer" (W_v)
        # Fixed LSH hyperplanes beta, one set per head: (heads, bits, d_h), N(0, 1) [A9].
        self.register_buffer("hyperplanes",
                             paddle.randn([num_heads, hash_bits, self.head_dim]), persistable=True)
        # Constants of eq. (5), kept out of the checkpoint: bit weights 2^j and partition ids.
        self.register_buffer("bit_values", paddle.to_tensor([[2.0 ** j for j in range(hash_bits)]]),
                             persistable=False)
        self.register_buffer("partition_ids",
                             paddle.arange(self.num_partitions, dtype="float32").unsqueeze(-1),
                             persistable=False)
        if inter:
            hidden = max(self.head_dim // se_ratio, 1)
            # Partition importance "similar to SENet", shared by heads and partitions [A11].
            self.importance = nn.Sequential(nn.Linear(self.head_dim, hidden), nn.ReLU(),
                                            nn.Linear(hidden, 1), nn.Sigmoid())
        self.aggregate = ConvBN(dim * (int(intra) + int(inter)), dim, 1)
        self.channel_to_space = PointwiseConv2D(dim, dim * down_rate * down_rate)

    # -- partition generator ----------------------------------------------------------------
    def partition(self, tokens):
        """LSH partition of ``tokens`` (B, heads, d_h, m) as the one-hot float matrix ``P``
        (B, heads, K, m); eq.(5): H(x) = sum_j 2^j h_j(x), h_j(x) = [beta_j . x >= 0]."""
        # No detach(): the comparison below carries no gradient anyway, and a detach() of this
        # intermediate raced in Paddle 3.3.1's multi-threaded executor in traced training
        # graphs (docs/deploy.md).
        projections = paddle.matmul(self.hyperplanes, tokens)                   # (B, h, bits, m)
        bits = (projections >= 0).astype(self.bit_values.dtype)
        codes = paddle.matmul(self.bit_values, bits)                             # (B, h, 1, m)
        return (codes == self.partition_ids).astype(tokens.dtype)                # (B, h, K, m)

    def forward(self, x):
        B, D, H, W = x.shape
        k = self.down_rate
        # Static sides that are already multiples of k skip the pad/crop copies (dygraph);
        # under to_static with dynamic H/W the generic pad + crop path is traced.
        aligned = isinstance(H, int) and isinstance(W, int) and H % k == 0 and W % k == 0
        t = x
        if k > 1:
            if not aligned:
                t, _, _ = pad_to_multiple(t, k, k, data_format="NCHW")
            t = self.down(t)
        h, w = t.shape[2], t.shape[3]
        m = static_token_count(t)
        xs = t.reshape([0, self.num_heads, self.head_dim, m])                   # hashed / scored
        xv = self.value(t).reshape([0, self.num_heads, self.head_dim, m])       # x~ of eqs. 7-8

        P = self.partition(xs)                                                   # (B, h, K, m)
        sizes = P.sum(axis=-1, keepdim=True)                                     # (B, h, K, 1)
        empty = (sizes == 0).astype(x.dtype)

        feats = []
        if self.use_intra:
            feats.append(self._intra(xs, xv, P, sizes, empty))
        if self.use_inter:
            feats.append(self._inter(xv, P, sizes, empty))
        a = paddle.concat(feats, axis=1) if len(feats) > 1 else feats[0]
        # Channels given explicitly (not -1): Paddle 2.6's legacy to_static cannot infer them
        # when h and w are symbolic, and the following conv then rejects its input.
        a = self.aggregate(a.reshape([0, self.dim * len(feats), h, w]))
        y = self.channel_to_space(a)
        if k > 1:
            y = F.pixel_shuffle(y, k)
            if not aligned:
                y = y[:, :, :H, :W]
        return y + x

    def _intra(self, xs, xv, P, sizes, empty):
        """Per-channel softmax of ``xs`` within each token's partition (eqs. 6-7, [A10])."""
        # Partition-wise maximum for a stable exp (the softmax is shift-invariant, so the shifts
        # carry no gradient). Shifting by the per-channel minimum first makes every value >= 0,
        # so masking non-members to 0 cannot win the max, and empty partitions get a finite 0
        # (the one-hot matmul below never meets inf * 0).
        shifted = xs - xs.detach().min(axis=-1, keepdim=True)                    # (B, h, d, m) >= 0
        # Explicit expands + a same-shape multiply: Paddle's CPU broadcasting multiply of 5-D
        # operands is far slower (docs/benchmarks.md).
        K, d = self.num_partitions, self.head_dim
        masked = (shifted.detach().unsqueeze(2).expand([-1, -1, K, -1, -1])
                  * P.unsqueeze(3).expand([-1, -1, -1, d, -1]))                   # (B, h, K, d, m)
        peak = masked.max(axis=-1)                                               # (B, h, K, d)
        e = paddle.exp(shifted - paddle.matmul(peak, P, transpose_x=True))       # (B, h, d, m)
        # Sums over the m tokens, 1 on a 1x1 map: hence matmul_any_contraction (also in _inter).
        denom = matmul_any_contraction(P, e, transpose_y=True) + empty           # (B, h, K, d)
        if self.intra_mode == "pooled":
            # GCNet-style: one softmax-pooled context per partition, broadcast to its tokens.
            pooled = matmul_any_contraction(P, e * xv, transpose_y=True) / denom
            return paddle.matmul(pooled, P, transpose_x=True)
        scale = (sizes if self.intra_mode == "mean1" else 1.0) / denom
        return paddle.matmul(scale, P, transpose_x=True) * e * xv

    def _inter(self, xv, P, sizes, empty):
        """Inter-partition attention (eqs. 8-9, [A11]), scattered back to the tokens."""
        means = matmul_any_contraction(P, xv, transpose_y=True) / paddle.clip(sizes, min=1.0)  # (B, h, K, d)
        importance = self.importance(means) * (1.0 - empty)                      # (B, h, K, 1)
        inter = means * (importance / importance.sum(axis=2, keepdim=True))
        return paddle.matmul(inter, P, transpose_x=True)                         # (B, h, d, m)

    def extra_repr(self):
        return (f"dim={self.dim}, heads={self.num_heads}, down_rate={self.down_rate}, "
                f"partitions={self.num_partitions}, intra={self.use_intra}, inter={self.use_inter}")


class DualBlock(nn.Layer):
    """Dual Attention Block (Sec. 3.3, Fig. 3): channel split [A3] -> MBConv || MHPA ->
    concat + Conv1x1 [A6] -> residual; then FFN -> residual (pre-norm LN [A5]).

    ``parallel=False`` is the series ablation of Table 5: MBConv on all channels, then MHPA on
    all channels.
    """

    def __init__(self, dim, num_heads, down_rate, mlp_ratio, mb_expansion=6, drop_path=0.0,
                 hash_bits=2, se_ratio=4, parallel=True, use_dw=True, intra=True, inter=True,
                 intra_mode="mean1"):
        super().__init__()
        self.parallel = parallel
        branch_dim = dim // 2 if parallel else dim
        self.norm1 = ChannelLayerNorm(dim)
        self.local = MBConv(dim - branch_dim if parallel else dim, mb_expansion, use_dw)
        self.attn = PartitionAttention(branch_dim, num_heads, down_rate, hash_bits, se_ratio,
                                       intra, inter, intra_mode)
        self.split_sizes = [dim - branch_dim, branch_dim]
        self.proj = PointwiseConv2D(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = ChannelLayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.fc1 = PointwiseConv2D(dim, hidden)
        self.act = GELU()
        self.fc2 = PointwiseConv2D(hidden, dim)

    def forward(self, x):
        y = self.norm1(x)
        if self.parallel:
            y_local, y_attn = paddle.split(y, self.split_sizes, axis=1)
            y = paddle.concat([self.local(y_local), self.attn(y_attn)], axis=1)
        else:
            y = self.attn(self.local(y))
        x = x + self.drop_path(self.proj(y))
        return x + self.drop_path(self.fc2(self.act(self.fc1(self.norm2(x)))))


class PatchEmbed(nn.Sequential):
    """Stage transition [A4]: depthwise 3x3 stride 2 + 1x1 conv + BN (MPViT-style)."""

    def __init__(self, in_ch, out_ch):
        super().__init__(DepthwiseConv2D(in_ch, 3, stride=2, padding=1, bias_attr=False),
                         ConvBN(in_ch, out_ch, 1))


class DualFormer(HybridBackbone):
    """Hierarchical DualFormer (Sec. 3.1): two 3x3/s2 conv stem, four stages of Dual Attention
    Blocks at strides 4/8/16/32, final BN, global average pooling, linear classifier.

    ``forward_pyramid`` returns the four stage outputs, each through a parameter-free channel
    LayerNorm [A17] (parameter-free so ImageNet checkpoints load unchanged into dense-task
    backbones and so every parameter is trained by classification; the neck's first 1x1 conv
    absorbs any per-channel affine).
    """

    classifier_prefixes = ("head.",)
    no_weight_decay_keywords = ()

    def __init__(self, depths=(2, 2, 4, 2), dims=(64, 128, 256, 320), num_heads=(1, 2, 4, 8),
                 down_rates=(4, 2, 1, 1), mlp_ratios=(8, 8, 4, 4), mb_expansion=6, hash_bits=2,
                 se_ratio=4, drop_path_rate=0.0, in_chans=3, class_num=1000, out_indices=(0, 1, 2, 3),
                 features_only=False, parallel=True, use_dw=True, intra=True, inter=True,
                 intra_mode="mean1", **kwargs):
        if kwargs:
            raise TypeError(f"DualFormer got unexpected arguments: {sorted(kwargs)}")
        super().__init__(in_chans, class_num, out_indices, features_only, min_input_size=1)
        self.dims = list(dims)
        self.stem = nn.Sequential(ConvBNAct(in_chans, dims[0] // 2, 3, stride=2, act_layer=GELU),
                                  ConvBNAct(dims[0] // 2, dims[0], 3, stride=2, act_layer=GELU))
        rates = drop_path_rates(drop_path_rate, depths)
        self.downsamples = nn.LayerList()
        self.stages = nn.LayerList()
        for i, depth in enumerate(depths):
            self.downsamples.append(nn.Identity() if i == 0 else PatchEmbed(dims[i - 1], dims[i]))
            self.stages.append(nn.Sequential(*[
                DualBlock(dims[i], num_heads[i], down_rates[i], mlp_ratios[i], mb_expansion,
                          rates[i][j], hash_bits, se_ratio, parallel, use_dw, intra, inter,
                          intra_mode)
                for j in range(depth)]))
        self.out_norms = StageNorms(functools.partial(ChannelLayerNorm, affine=False), dims, self.out_indices)
        self.num_features = dims[-1]
        if not features_only:  # the classification head: a dense backbone has none (as every family)
            self.norm = nn.BatchNorm2D(dims[-1])
            self.head = self.classifier(class_num)
        self.feature_info = [dict(channels=d, stride=4 * 2 ** i) for i, d in enumerate(dims)]
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(layer):
        if isinstance(layer, nn.Linear):
            trunc_normal_(layer.weight, std=0.02)
            if layer.bias is not None:
                zeros_(layer.bias)
        elif isinstance(layer, nn.Conv2D):
            kaiming_normal_fan_out_(layer.weight)
            if layer.bias is not None:
                zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2D, ChannelLayerNorm)):
            if layer.weight is not None:
                ones_(layer.weight)
                zeros_(layer.bias)

    def _stages(self, x, collect):
        x = self.stem(x)
        outs = []
        for i in range(4):
            x = self.stages[i](self.downsamples[i](x))
            if collect and i in self.out_indices:
                outs.append(self.out_norms.normalize(i, x))
        return x, outs

    def forward_features(self, x):
        self.require_classifier("forward_features")
        x, _ = self._stages(x, collect=False)
        return self.norm(x).mean(axis=[2, 3])

    def forward_pyramid(self, x):
        return self._stages(x, collect=True)[1]


# Table 1 depths/widths; the rest are our assumptions: heads [1,2,4,8] [A7],
# down-sample rates [4,2,1,1] [A8], FFN ratios [8,8,4,4] ([4,4,2,2] for T) [A1], MBConv x6 [A2],
# drop path per variant [A16].
_SOURCE = "paper Table 1/2 (Params, GFLOPs at 224x224)"
VARIANTS = {
    "DualFormer_T": Variant(dict(depths=(2, 2, 4, 2), dims=(64, 128, 256, 320), mlp_ratios=(4, 4, 2, 2),
                                 drop_path_rate=0.0), reference_counts(5.5e6, 1.3e9, 0.03, 0.10, _SOURCE)),
    "DualFormer_XS": Variant(dict(depths=(2, 2, 4, 2), dims=(64, 128, 320, 368), mlp_ratios=(8, 8, 4, 4),
                                  drop_path_rate=0.05), reference_counts(10.5e6, 2.3e9, 0.03, 0.10, _SOURCE)),
    "DualFormer_S": Variant(dict(depths=(4, 4, 7, 3), dims=(64, 128, 320, 512), mlp_ratios=(8, 8, 4, 4),
                                 drop_path_rate=0.1), reference_counts(22.6e6, 4.4e9, 0.03, 0.10, _SOURCE)),
    "DualFormer_B": Variant(dict(depths=(6, 12, 25, 7), dims=(64, 128, 368, 560), mlp_ratios=(8, 8, 4, 4),
                                 drop_path_rate=0.3), reference_counts(74.0e6, 15.8e9, 0.08, 0.08, _SOURCE)),
}
register_variants(DualFormer, "dualformer", PAPER, VARIANTS, globals())
