"""MAFormer-specific checks: GLD resampling equals Paddle's pooling/resize ops, the global branch's
cost is linear in tokens, it works at odd and tiny sizes, padded CSWin keys are masked exactly,
and every spec flag constructs, runs and trains."""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid.flops import count_macs, count_params
from ppvision_hybrid.losses_token_label import TokenLabelCELoss
from ppvision_hybrid.models.maformer import (CSWinAttention, GlobalLearningDownsample, MAFBlock,
                                             MAFormer, _conv_nhwc, resample_matrices)

TINY = dict(embed_dims=(16, 32, 32, 32), depths=(2, 2, 1, 1), num_heads=(2, 2, 2, 2))


@pytest.mark.parametrize("hw", [(56, 56), (25, 33), (9, 13), (3, 5)])
def test_gld_resampling_equals_adaptive_pool_and_bilinear(hw):
    H, W = hw
    x = paddle.randn([2, 6, H, W])
    rows, cols_pool, cols_pos = resample_matrices(H, W, 7, 14)
    # Separable matrices applied in NCHW: R @ x @ C^T
    pooled = paddle.matmul(paddle.matmul(rows[:14], x), cols_pool, transpose_y=True)
    pos = paddle.matmul(paddle.matmul(rows[14:], x), cols_pos, transpose_y=True)
    np.testing.assert_allclose(pooled.numpy(), F.adaptive_avg_pool2d(x, 14).numpy(), rtol=1e-5, atol=1e-5)
    ref = F.interpolate(x, size=(7, 7), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(pos.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


class _GlobalBranch(nn.Layer):
    """GLD + fusion of one MAF block, fed an NCHW map (so count_macs can drive it)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        x = x.transpose([0, 2, 3, 1])
        B, H, W, C = x.shape
        g = self.block.global_branch
        x_global = g(x, resample_matrices(H, W, g.grid, g.source_grid))
        return self.block.fusion(x.reshape([B, H * W, C]), x_global)


def test_global_branch_cost_is_linear_in_tokens():
    paddle.seed(0)
    branch = _GlobalBranch(MAFBlock(64, 2, stripe=1))  # a stage-1 block of MAFormer-S
    # Stage-1 maps of 224x224, 448x448 and 800x1333 inputs.
    sizes = [(56, 56), (112, 112), (200, 334)]
    macs = [count_macs(branch, (64, h, w)) for h, w in sizes]
    tokens = [h * w for h, w in sizes]
    ratio = macs[1] / macs[0]
    # 4x the tokens -> at most 4x the cost (a fixed part, the token FC, does not grow); global
    # attention over the same tokens would grow ~16x in its attention matmuls.
    assert 3.7 < ratio <= 4.0, (macs, ratio)
    per_token = [m / t for m, t in zip(macs, tokens)]
    assert max(per_token) / min(per_token) < 1.1, per_token
    # Global tokens stay 49 at every size.
    g = branch.block.global_branch
    x = paddle.randn([1, 200, 334, 64])
    assert g(x, resample_matrices(200, 334, 7, 14)).shape == [1, 49, 64]


def test_model_stage12_global_part_scales_with_tokens():
    """Whole MAFormer-S stages 1-2 global machinery at 224 vs 448 (count with and without GLD)."""
    paddle.seed(0)
    full = MAFormer(depths=(3, 5, 0, 0), features_only=True, out_indices=(1,))
    local_only = MAFormer(depths=(3, 5, 0, 0), features_only=True, out_indices=(1,))
    for stage in local_only.stages[:2]:
        for blk in stage.blocks:
            blk.fusion.forward = lambda xl, xg: xl * 0.0  # drop the global branch's matmuls
            blk.global_branch.forward = lambda x, m: x
    diff = [count_macs(full, (3, s, s)) - count_macs(local_only, (3, s, s)) for s in (224, 448)]
    ratio = diff[1] / diff[0]
    assert 3.7 < ratio <= 4.0, (diff, ratio)


@pytest.mark.parametrize("hw", [(51, 80), (26, 40), (3, 5), (1, 1)])
def test_gld_odd_and_tiny_maps(hw):
    H, W = hw
    g = GlobalLearningDownsample(32)
    out = g(paddle.randn([2, H, W, 32]), resample_matrices(H, W, 7, 14))
    assert out.shape == [2, 49, 32]
    assert bool(paddle.isfinite(out).all())


def test_odd_input_203x317_pyramid_and_logits():
    paddle.seed(0)
    model = pvh.create_model("MAFormer_S", class_num=10, features_only=True, out_indices=(0, 1))
    model.eval()
    with paddle.no_grad():
        f0, f1 = model(paddle.randn([1, 3, 203, 317]))
    assert f0.shape == [1, 64, 51, 80] and f1.shape == [1, 128, 26, 40]
    assert bool(paddle.isfinite(f1).all())


def _stripe_reference(attn, x, qkv_layer, lepe, s):
    """Unpadded per-stripe CSWin attention (the last stripe simply has fewer rows)."""
    B, H, W, C = x.shape
    half, nh, hd = C // 2, attn.branch_heads, attn.head_dim
    qkv = qkv_layer(x)
    outs = []
    for r0 in range(0, H, s):
        part = qkv[:, r0:r0 + s]
        rows = part.shape[1]
        q, k, v = [t.reshape([B, rows * W, nh, hd]).transpose([0, 2, 1, 3]) for t in paddle.split(part, 3, axis=-1)]
        a = F.softmax(paddle.matmul(q, k, transpose_y=True) * attn.scale, axis=-1)
        o = paddle.matmul(a, v).transpose([0, 2, 1, 3]).reshape([B, rows, W, half])
        outs.append(o + _conv_nhwc(lepe, part[..., 2 * half:]))
    return paddle.concat(outs, axis=1)


@pytest.mark.parametrize("hw", [(5, 7), (4, 6), (9, 2)])
def test_cswin_padded_keys_are_masked(hw):
    paddle.seed(1)
    H, W = hw
    attn = CSWinAttention(8, 4, stripe=2)
    for p in attn.parameters():  # non-zero biases, so unmasked padding would leak
        p.set_value(paddle.randn(p.shape) * 0.5)
    x = paddle.randn([2, H, W, 8])
    horizontal = _stripe_reference(attn, x, attn.qkv_h, attn.lepe_h, 2)
    xt = x.transpose([0, 2, 1, 3])
    vertical = _stripe_reference(attn, xt, attn.qkv_v, attn.lepe_v, 2).transpose([0, 2, 1, 3])
    ref = attn.proj(paddle.concat([horizontal, vertical], axis=-1))
    np.testing.assert_allclose(attn(x).numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    if H % 2 or W % 2:  # padding present: without the mask the result must differ
        attn.mask_padding = False
        assert np.abs(attn(x).numpy() - ref.numpy()).max() > 1e-3


FLAG_SETS = [
    dict(),
    dict(local_attn="swin"),
    dict(global_op="conv"),
    dict(fusion="local_enhanced"),
    dict(embed="patch"),
    dict(gld_grid=14),
    dict(pos_embed="none", layer_scale=1e-6),
    dict(token_label_head=True),
]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "default")
def test_spec_flags_construct_run_and_train(flags):
    paddle.seed(0)
    model = MAFormer(class_num=5, **TINY, **flags)
    model.train()
    out = model(paddle.randn([2, 3, 64, 64]))
    assert out.shape == [2, 5]
    if flags.get("token_label_head"):
        cls_logits, token_logits = model.forward_token_label(paddle.randn([2, 3, 64, 64]))
        assert token_logits.shape == [2, 4, 5]
        loss = TokenLabelCELoss()((cls_logits, token_logits),
                                  (paddle.to_tensor([1, 2]), paddle.randint(0, 5, [2, 4])))["TokenLabelCELoss"]
        (loss + out.sum()).backward()
    else:
        out.sum().backward()
    no_grad = [n for n, p in model.named_parameters() if not p.stop_gradient and p.grad is None]
    assert not no_grad, no_grad[:5]
    model.eval()
    with paddle.no_grad():
        odd = model(paddle.randn([1, 3, 75, 93]))
    assert odd.shape == [1, 5] and bool(paddle.isfinite(odd).all())


def test_flag_gld_grid_14_counts_match_spec():
    # spec Sec. 5.2: MAFormer-S with gld_grid=14 has 24.57M parameters
    model = pvh.create_model("MAFormer_S", gld_grid=14)
    assert abs(count_params(model) / 24.57e6 - 1) < 0.002


def test_bad_flags_are_clear_errors():
    with pytest.raises(ValueError, match="local_attn"):
        MAFormer(local_attn="axial", **TINY)
    with pytest.raises(ValueError, match="global_op"):
        MAFormer(global_op="pool", **TINY)
    with pytest.raises(ValueError, match="even head count"):
        MAFormer(embed_dims=(16, 32, 32, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 2))


def test_token_label_loss_value():
    cls_logits = paddle.zeros([1, 4])
    token_logits = paddle.zeros([1, 2, 4])
    soft = paddle.full([1, 4], 0.25)
    loss = TokenLabelCELoss(aux_weight=0.5)((cls_logits, token_logits),
                                           (soft, paddle.full([1, 2, 4], 0.25)))["TokenLabelCELoss"]
    np.testing.assert_allclose(float(loss), 1.5 * np.log(4.0), rtol=1e-6)
