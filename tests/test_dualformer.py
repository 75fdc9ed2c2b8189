"""DualFormer specifics: LSH partition-wise attention (MHPA) against a loop reference, cost
linear in tokens, determinism of the fixed hyperplanes (eval, reload, export), odd sizes, and
the numbered assumptions (docs/models/dualformer.md). The registry harness (tests/test_models.py)
covers the generic surface."""
import json
import os
import tempfile

import numpy as np
import paddle
import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid.flops import count_macs, count_params
from ppvision_hybrid.models.dualformer import DualFormer, PartitionAttention


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _tokens(mhpa, x):
    """The module's own pre-processing: pad, down-sample, split heads; returns xs, xv (numpy too)."""
    from ppvision_hybrid.layers import pad_to_multiple
    t = x
    if mhpa.down_rate > 1:
        t = mhpa.down(pad_to_multiple(t, mhpa.down_rate, data_format="NCHW")[0])
    xs = t.reshape([0, mhpa.num_heads, mhpa.head_dim, -1])
    xv = mhpa.value(t).reshape([0, mhpa.num_heads, mhpa.head_dim, -1])
    return xs, xv


def _reference_codes(xs, beta):
    proj = np.einsum("hbd,nhdm->nhbm", beta, xs)
    return ((proj >= 0) * (2 ** np.arange(beta.shape[1]))[None, None, :, None]).sum(2)  # (B, h, m)


def _small_mhpa(dim=16, heads=2, down=2, **kw):
    paddle.seed(1)
    m = PartitionAttention(dim, heads, down, **kw)
    m.eval()
    return m


# ---------------------------------------------------------------------------------------------
# Partition generator and the two attentions against straightforward per-partition loops
# ---------------------------------------------------------------------------------------------
def test_lsh_partition_matches_hash_definition_and_is_a_partition():
    mhpa = _small_mhpa(dim=24, heads=3, down=1, hash_bits=3)
    x = paddle.randn([2, 24, 7, 9])
    xs, _ = _tokens(mhpa, x)
    P = mhpa.partition(xs).numpy()                                   # (B, h, K, m)
    assert P.shape == (2, 3, 8, 63)
    np.testing.assert_array_equal(P.sum(2), np.ones((2, 3, 63)))     # each token in exactly one
    codes = _reference_codes(xs.numpy(), mhpa.hyperplanes.numpy())
    np.testing.assert_array_equal(P.argmax(2), codes)                # eqs. (4)-(5)
    # Heads hash independently (their own hyperplanes): not all heads agree.
    assert not all((codes[:, 0] == codes[:, h]).all() for h in range(1, 3))


@pytest.mark.parametrize("mode", ["mean1", "literal", "pooled"])
def test_intra_partition_attention_matches_loop_reference(mode):
    mhpa = _small_mhpa(intra_mode=mode)
    x = paddle.randn([2, 16, 9, 11]) * 3
    xs, xv = _tokens(mhpa, x)
    P = mhpa.partition(xs)
    sizes = P.sum(-1, keepdim=True)
    got = mhpa._intra(xs, xv, P, sizes, (sizes == 0).astype("float32")).numpy()
    xs_np, xv_np = xs.numpy(), xv.numpy()
    codes = P.numpy().argmax(2)
    want = np.zeros_like(xv_np)
    for b in range(2):
        for h in range(mhpa.num_heads):
            for k in range(mhpa.num_partitions):
                idx = codes[b, h] == k
                if not idx.any():
                    continue
                w = _np_softmax(xs_np[b, h][:, idx], axis=1)         # per channel, within partition
                v = xv_np[b, h][:, idx]
                if mode == "mean1":
                    want[b, h][:, idx] = idx.sum() * w * v
                elif mode == "literal":
                    want[b, h][:, idx] = w * v
                else:
                    want[b, h][:, idx] = (w * v).sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_inter_partition_attention_matches_loop_reference():
    mhpa = _small_mhpa(dim=16, heads=2, down=1)
    x = paddle.randn([1, 16, 6, 7])
    xs, xv = _tokens(mhpa, x)
    P = mhpa.partition(xs)
    sizes = P.sum(-1, keepdim=True)
    got = mhpa._inter(xv, P, sizes, (sizes == 0).astype("float32")).numpy()
    xv_np, codes = xv.numpy(), P.numpy().argmax(2)
    want = np.zeros_like(xv_np)
    for h in range(2):
        present = [k for k in range(4) if (codes[0, h] == k).any()]
        means = {k: xv_np[0, h][:, codes[0, h] == k].mean(1) for k in present}           # eq. (8)
        imp = {k: mhpa.importance(paddle.to_tensor(means[k][None])).numpy().item() for k in present}
        total = sum(imp.values())                                                         # eq. (9)
        for k in present:
            want[0, h][:, codes[0, h] == k] = (means[k] * imp[k] / total)[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_empty_partitions_stay_finite_forward_and_backward():
    # Identical tokens all hash to one partition: three of four partitions are empty.
    mhpa = _small_mhpa(dim=16, heads=2, down=2)
    mhpa.train()
    x = paddle.ones([1, 16, 8, 8]) * paddle.randn([1, 16, 1, 1])
    x.stop_gradient = False
    xs, _ = _tokens(mhpa, x)
    P = mhpa.partition(xs).numpy()
    assert (P.sum(-1) == 0).any(), "expected empty partitions in this construction"
    y = mhpa(x)
    assert bool(paddle.isfinite(y).all())
    y.sum().backward()
    assert bool(paddle.isfinite(x.grad).all())
    for n, p in mhpa.named_parameters():
        if p.grad is not None:
            assert bool(paddle.isfinite(p.grad).all()), n


# ---------------------------------------------------------------------------------------------
# Cost linear in tokens, counted with the project's MAC counter (which sees the matmuls)
# ---------------------------------------------------------------------------------------------
def _mhpa_macs_formula(D, heads, k, bits, m, hidden):
    K = 2 ** bits
    d = D // heads
    per_token = (D * k * k * (k > 1)  # depthwise k x k / stride-k down-sampling (none at k=1)
                 + D * D              # W_v
                 + bits * D + heads * bits   # hashing: hyperplane products + bit packing
                 + 3 * K * D          # intra: peak scatter, softmax denominators, scale scatter
                 + 2 * K * D          # inter: partition means, scatter back
                 + 2 * D * D          # aggregation conv (2D -> D)
                 + D * D * k * k)     # channel-to-spatial conv
    return m * per_token + heads * K * (d * hidden + hidden)   # + SE on the K partition means


@pytest.mark.parametrize("D,heads,k", [(32, 1, 4), (64, 2, 2), (128, 4, 1)])
def test_mhpa_macs_are_linear_in_tokens_and_include_the_attention_matmuls(D, heads, k):
    mhpa = _small_mhpa(dim=D, heads=heads, down=k)
    per_token = []
    for side in (28, 56):
        macs = count_macs(mhpa, (D, side, side))
        m = (side // k) ** 2
        formula = _mhpa_macs_formula(D, heads, k, 2, m, max(D // heads // 4, 1))
        # Exact: the counter sees the one-hot matmuls (intra/inter attention), not just convs.
        assert macs == formula, (macs, formula)
        per_token.append(macs / m)
    assert abs(per_token[1] / per_token[0] - 1) < 0.002, per_token


def test_mhpa_at_detection_resolution_is_linear():
    # Stage 1 of an 800x1333 image (200x334 map, 50x84 = 4200 MHPA tokens): per-token MACs as
    # at 224 (14x14 = 196 tokens), and the forward works.
    mhpa = _small_mhpa(dim=32, heads=1, down=4)
    small = count_macs(mhpa, (32, 56, 56)) / 196
    large = count_macs(mhpa, (32, 200, 334)) / (50 * 84)
    assert abs(large / small - 1) < 0.002
    with paddle.no_grad():
        y = mhpa(paddle.randn([1, 32, 200, 334]))
    assert y.shape == [1, 32, 200, 334] and bool(paddle.isfinite(y).all())


def test_whole_model_macs_scale_with_pixels():
    model = pvh.create_model("DualFormer_T")
    m224 = count_macs(model, (3, 224, 224))
    m448 = count_macs(model, (3, 448, 448))
    # 4x the pixels -> 4x the MACs (minus the size-independent classifier): no quadratic term.
    assert 3.98 < m448 / m224 <= 4.0, m448 / m224


# ---------------------------------------------------------------------------------------------
# Determinism: fixed hyperplanes (buffers) in eval, across reloads and in the exported graph
# ---------------------------------------------------------------------------------------------
def _tiny(**kw):
    cfg = dict(depths=(1, 1, 1, 1), dims=(16, 32, 32, 48), class_num=10)
    cfg.update(kw)
    return DualFormer(**cfg)


def test_hyperplanes_are_buffers_saved_and_reloaded():
    paddle.seed(0)
    model = _tiny()
    model.eval()
    names = {n for n, _ in model.named_parameters()}
    assert not any("hyperplanes" in n for n in names), "hyperplanes must not be trainable"
    state = model.state_dict()
    keys = [k for k in state if k.endswith("attn.hyperplanes")]
    assert len(keys) == 4
    x = paddle.randn([1, 3, 61, 77])
    with paddle.no_grad():
        first, second = model(x).numpy(), model(x).numpy()
    np.testing.assert_array_equal(first, second)           # same input twice -> identical
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.pdparams")
        paddle.save(state, path)
        paddle.seed(999)
        fresh = _tiny()
        assert not np.array_equal(fresh.state_dict()[keys[0]].numpy(), state[keys[0]].numpy())
        pvh.load_state_dict_checked(fresh, paddle.load(path))
    fresh.eval()
    for k in keys:
        np.testing.assert_array_equal(fresh.state_dict()[k].numpy(), state[k].numpy())
    with paddle.no_grad():
        np.testing.assert_array_equal(fresh(x).numpy(), first)


def test_training_step_keeps_hyperplanes_fixed():
    paddle.seed(0)
    model = _tiny()
    model.train()
    before = model.stages[0][0].attn.hyperplanes.numpy().copy()
    opt = paddle.optimizer.AdamW(1e-2, parameters=model.parameters())
    loss = model(paddle.randn([2, 3, 32, 32])).mean()
    loss.backward()
    opt.step()
    np.testing.assert_array_equal(model.stages[0][0].attn.hyperplanes.numpy(), before)


def test_exported_mhpa_dynamic_shapes_equal_dygraph_without_sorting_ops():
    from paddle.static import InputSpec
    mhpa = _small_mhpa(dim=16, heads=2, down=4)
    with tempfile.TemporaryDirectory() as d:
        static = paddle.jit.to_static(mhpa, input_spec=[InputSpec([None, 16, None, None], "float32")],
                                      full_graph=True)
        prefix = os.path.join(d, "mhpa")
        paddle.jit.save(static, prefix)
        program = open(prefix + ".json").read() if os.path.exists(prefix + ".json") else ""
        loaded = paddle.jit.load(prefix)
        # Odd sizes, a map smaller than one k x k cell, a batch of 3.
        for shape in [(1, 16, 13, 17), (2, 16, 3, 2), (3, 16, 32, 48)]:
            x = paddle.randn(list(shape))
            with paddle.no_grad():
                ref = mhpa(x).numpy()
                got = loaded(x).numpy()
            assert got.shape == tuple(shape)
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    if program:  # Paddle 3.x (PIR) program: op names appear as "1.<op>"
        ops = set(json.dumps(json.loads(program)).split('"'))
        assert "1.matmul" in ops
        assert not any(o.endswith(("argsort", "gather", "gather_nd", "scatter", "top_k")) for o in ops)


# ---------------------------------------------------------------------------------------------
# Any input size, dense features, spec assumptions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 16, 13, 17), (1, 16, 3, 2), (2, 16, 1, 1), (1, 16, 33, 8)])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_mhpa_any_size_keeps_shape(shape, k):
    mhpa = _small_mhpa(dim=16, heads=2, down=k)
    with paddle.no_grad():
        y = mhpa(paddle.randn(list(shape)))
    assert y.shape == list(shape) and bool(paddle.isfinite(y).all())


def test_pyramid_odd_size_and_checkpoint_compatibility(tmp_path):
    paddle.seed(0)
    cls_model = pvh.create_model("DualFormer_T", class_num=10)
    dense = pvh.create_model("DualFormer_T", class_num=10, features_only=True)
    # A classification checkpoint loads into the dense backbone through the public loading path
    # (the dense adapters'): only the head (final norm, classifier) is ignored, and with
    # parameter-free output norms nothing of the pyramid starts from initialisation.
    from ppvision_hybrid.adapters.common import load_classification_weights
    path = str(tmp_path / "DualFormer_T_cls10.pdparams")
    paddle.save(cls_model.state_dict(), path)
    assert load_classification_weights(dense, "DualFormer_T", path, {"class_num": 10}) == []
    ignored = set(cls_model.state_dict()) - set(dense.state_dict())
    assert ignored and all(k.startswith(("head.", "norm.")) for k in ignored), sorted(ignored)
    for key, value in dense.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), cls_model.state_dict()[key].numpy())
    dense.eval()
    with paddle.no_grad():
        feats = dense(paddle.randn([1, 3, 203, 317]))
    expected = [(51, 80), (26, 40), (13, 20), (7, 10)]                 # ceil at each stride-2
    assert [tuple(f.shape[2:]) for f in feats] == expected
    assert [f.shape[1] for f in feats] == [64, 128, 256, 320]
    for f in feats:  # channel LayerNorm outputs: zero mean over channels
        np.testing.assert_allclose(f.numpy().mean(1), 0, atol=1e-4)


def test_variant_hyperparameters_follow_the_spec():
    model = pvh.create_model("DualFormer_XS")
    block = model.stages[3][0]
    # channel split 1:1 [A3], heads [1,2,4,8] [A7], down-sample rates [4,2,1,1] [A8],
    # K = 4 partitions [A9], MBConv expansion 6 [A2], FFN ratio 4 in stage 4 [A1].
    assert block.split_sizes == [184, 184]
    assert [s[0].attn.num_heads for s in model.stages] == [1, 2, 4, 8]
    assert [s[0].attn.down_rate for s in model.stages] == [4, 2, 1, 1]
    assert block.attn.num_partitions == 4
    assert block.local[0][0].weight.shape == [184 * 6, 184, 1, 1]
    assert block.fc1.weight.shape[0] == 368 * 4
    assert model.stages[0][0].fc1.weight.shape[0] == 64 * 8
    # Stochastic depth grows linearly to the variant's rate [A16].
    assert model.stages[3][-1].drop_path.drop_prob == pytest.approx(0.05)


@pytest.mark.parametrize("kw", [dict(parallel=False), dict(use_dw=False), dict(intra=False),
                                dict(inter=False), dict(intra_mode="pooled")])
def test_ablation_switches_train(kw):
    paddle.seed(0)
    model = _tiny(**kw)
    model.train()
    out = model(paddle.randn([2, 3, 40, 36]))
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if not p.stop_gradient and p.grad is None]
    assert not missing, missing[:5]
    base = count_params(_tiny())
    if kw.get("intra") is False:
        assert count_params(model) < base        # aggregation conv takes D instead of 2D channels
