"""TransXNet: converter coverage of the official keys, numerical regression against outputs
recorded from the authors' PyTorch code, dense mode, malformed checkpoints, fast paths.

The recorded outputs (tests/data/transxnet_t_official_outputs.npz) were produced by the
authors' code (LMMMEng/TransXNet, mmcv/timm imports stubbed, torch 2.13 CPU, float32) loaded
with weights from :func:`official_random_state` -- generated here with numpy from a seed, in the
official layout -- so this test needs no torch: it regenerates the same weights, converts them
and must reproduce the authors' outputs.
"""
import gzip
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid.models import transxnet as tx
from ppvision_hybrid.weights import CheckpointError, load_state_dict_checked

from conftest import DATA, official_keys, official_random_state, parse_key_list, randomize_batch_norms

SHARED_KEYS = os.path.join(DATA, "transxnet_t_reference_keys.txt.gz")  # the authors' key list, as listed
NAMES = {"t": "TransXNet_T", "s": "TransXNet_S", "b": "TransXNet_B"}


def _converted_model(seed, dense=False):
    state = official_random_state(official_keys("t", dense), seed)
    model = pvh.create_model("TransXNet_T", features_only=dense) if dense else pvh.create_model("TransXNet_T")
    load_state_dict_checked(model, pvh.convert_checkpoint("TransXNet_T", state))
    model.eval()
    return model


@pytest.fixture(scope="module")
def recorded():
    return np.load(os.path.join(DATA, "transxnet_t_official_outputs.npz"))


# ---- converter coverage -----------------------------------------------------------------
def test_recorded_keys_are_the_official_reference_keys():
    with gzip.open(SHARED_KEYS, "rt") as f:
        assert official_keys("t") == parse_key_list(f)


@pytest.mark.parametrize("arch", ["t", "s", "b"])
def test_converter_maps_every_official_key_with_consistent_shapes(arch):
    keys = official_keys(arch)
    # np.zeros is lazily allocated, so even the base model's 48 M values cost no time here.
    state = {n: np.zeros(s, dtype=np.int64 if d == "int64" else np.float32) for n, s, d in keys}
    converted = pvh.convert_checkpoint(NAMES[arch], state)
    with paddle.LazyGuard():  # shapes only: skip initialising the weights
        model = pvh.create_model(NAMES[arch])
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    dropped = [n for n, _, _ in keys if n.endswith("num_batches_tracked")]
    assert len(converted) == len(keys) - len(dropped)
    assert set(converted) == set(own), (sorted(set(own) - set(converted))[:5], sorted(set(converted) - set(own))[:5])
    bad = [(k, v.shape, own[k]) for k, v in converted.items() if tuple(v.shape) != own[k]]
    assert not bad, bad[:5]
    # Trainable parameter count equals the official one (all keys but BN statistics).
    n_official = sum(int(np.prod(s)) for n, s, _ in keys
                     if not n.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert n_official == pvh.flops.count_params(model)


def test_converter_layout_rules():
    state = official_random_state(official_keys("t"), seed=3)
    out = pvh.convert_checkpoint("TransXNet_T", state)
    # Classifier: 1x1 conv [classes, C, 1, 1] -> Linear [C, classes].
    np.testing.assert_array_equal(out["head.weight"], state["classifier.2.weight"][:, :, 0, 0].T)
    # BN running statistics are renamed; conv weights copy unchanged.
    np.testing.assert_array_equal(out["patch_embed.1._mean"], state["patch_embed.proj.bn.running_mean"])
    np.testing.assert_array_equal(out["patch_embed.1._variance"], state["patch_embed.proj.bn.running_var"])
    np.testing.assert_array_equal(out["stages.2.4.token_mixer.local_unit.weight"],
                                  state["network.4.4.token_mixer.local_unit.weight"])
    np.testing.assert_array_equal(out["downsamples.1.0.weight"], state["network.3.proj.conv.weight"])
    assert not any("num_batches_tracked" in k for k in out)


# ---- numerical identity with the authors' code (recorded) -----------------------------------
def test_logits_match_recorded_official_outputs(recorded):
    model = _converted_model(seed=2024)
    x224 = np.random.default_rng(7).standard_normal((1, 3, 224, 224)).astype("float32")
    with paddle.no_grad():
        got224 = model(paddle.to_tensor(x224)).numpy()
        x_small = np.random.default_rng(8).standard_normal((2, 3, 64, 80)).astype("float32")
        got_small = model(paddle.to_tensor(x_small)).numpy()  # 64x80: resized position terms
    np.testing.assert_allclose(got224, recorded["logits_224"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got_small, recorded["logits_small"], rtol=0, atol=1e-4)
    assert np.abs(recorded["logits_224"]).max() > 0.5  # a non-degenerate reference


def test_dense_outputs_match_recorded_official_outputs(recorded):
    model = _converted_model(seed=2025, dense=True)
    x_dense = np.random.default_rng(9).standard_normal((1, 3, 40, 56)).astype("float32")
    with paddle.no_grad():
        feats = model(paddle.to_tensor(x_dense))
    assert [tuple(f.shape) for f in feats] == [(1, 48, 10, 14), (1, 96, 5, 7), (1, 224, 3, 4), (1, 448, 2, 2)]
    for i, f in enumerate(feats):
        np.testing.assert_allclose(f.numpy(), recorded[f"dense_{i}"], rtol=0, atol=1e-4)


def test_dense_mode_outputs_are_group_normalised():
    model = pvh.create_model("TransXNet_T", features_only=True, out_indices=(1, 3))
    model.eval()
    assert sorted(n for n, _ in model.named_parameters() if n.startswith("out_norms")) == [
        "out_norms.1.bias", "out_norms.1.weight", "out_norms.3.bias", "out_norms.3.weight"]
    with paddle.no_grad():
        feats = model(paddle.randn([2, 3, 75, 91]))
    assert [f.shape[1] for f in feats] == [96, 448]
    for f in feats:
        a = f.numpy().reshape(2, -1)
        np.testing.assert_allclose(a.mean(1), 0, atol=1e-4)   # GroupNorm(1, C), unit affine
        np.testing.assert_allclose(a.std(1), 1, atol=1e-2)


# ---- pieces with more than one formulation ----------------------------------------------
def test_relative_position_resize_equals_bicubic_interpolation():
    pos = paddle.randn([1, 2, 49, 16])
    for size in [(64, 20), (30, 9), (49, 16)]:
        ref = paddle.nn.functional.interpolate(pos, size=list(size), mode="bicubic", align_corners=False)
        got = tx.resize_relative_position(pos, *size)
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(tx.resize_relative_position(pos, 49, 16).numpy(), pos.numpy())


@pytest.mark.parametrize("column_matmul", [True, False], ids=["column-matmul", "column-conv"])
@pytest.mark.parametrize("kernel_size,num_groups", [(7, 2), (7, 3), (3, 2), (5, 4)])
def test_idconv_saved_graph_formulation_equals_grouped_conv(kernel_size, num_groups, column_matmul, monkeypatch):
    """Two groups take the sigmoid path of ``dynamic_mixer``, more groups the softmax path; the
    column sum runs as the banded matrix product (static heights up to
    ``COLUMN_MATMUL_MAX_HEIGHT``) or as the one-hot Kx1 conv (taller or dynamic heights)."""
    monkeypatch.setattr(tx, "COLUMN_MATMUL_MAX_HEIGHT", 64 if column_matmul else 0)
    layer = tx.IDConv(24, kernel_size=kernel_size, num_groups=num_groups)
    layer.eval()
    x = paddle.randn([2, 24, 13, 10])
    with paddle.no_grad():
        weight, bias = layer.dynamic_kernels(x)
        grouped = layer.conv_grouped(x, weight, bias).numpy()
        separable = layer.deploy_twin()(x).numpy()  # the inference form (IDConvDeploy)
        reference = np.stack([paddle.nn.functional.conv2d(x[i:i + 1], weight[i].unsqueeze(1), bias[i],
                                                          padding=kernel_size // 2,
                                                          groups=24).numpy()[0] for i in range(2)])
    np.testing.assert_allclose(grouped, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(separable, reference, rtol=0, atol=1e-5)


def test_column_shift_matrix_is_the_one_hot_column_conv():
    """``S @ M`` equals the zero-padded one-hot Kx1 conv it replaces, borders included."""
    k, h, w = 7, 5, 3  # a height below the kernel size: every row meets a border
    mixed = paddle.randn([4, k + 1, h, w])
    eye = paddle.eye(k)
    col_kernel = paddle.concat([eye, eye[k // 2:k // 2 + 1]]).reshape([1, k + 1, k, 1])
    ref = F.conv2d(mixed, col_kernel, padding=[k // 2, 0])[:, 0]
    shift = paddle.to_tensor(tx.column_shift_matrix(h, k))
    assert tuple(shift.shape) == (h, (k + 1) * h)
    got = paddle.matmul(shift, mixed.reshape([4, (k + 1) * h, w]))
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=0, atol=1e-6)


def test_multi_scale_dwconv_merged_kernel_equals_the_split_convs():
    layer = tx.MultiScaleDWConv(22)  # 22 channels: the first split takes the remainder (7, 5, 5, 5)
    for conv in layer.proj:
        conv.bias.set_value(paddle.randn(conv.bias.shape))
    x = paddle.randn([2, 22, 9, 6])
    with paddle.no_grad():
        ref = layer(x).numpy()
        weight, bias = layer.merged_kernel()
        got = F.conv2d(x, weight, bias, padding=3, groups=22).numpy()
        weight, bias = layer.merged_kernel(with_identity=True)
        got_residual = F.conv2d(x, weight, bias, padding=3, groups=22).numpy()
    assert tuple(weight.shape) == (22, 1, 7, 7)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got_residual, ref + x.numpy(), rtol=0, atol=1e-5)


def test_exported_graph_with_fixed_batch_is_right_on_every_call(tmp_path):
    """Paddle Inference's oneDNN conv caches its kernel per shape, so a saved graph must never run
    IDConv as a conv with computed kernels (fixed batch included): a second call with new values
    would reuse the first call's kernels. The inference form's other pieces (layer scale as a
    conv, BNs folded into 1x1 convs, pooling as matrices) are checked too, with non-trivial BN
    statistics."""
    from paddle.static import InputSpec
    from ppvision_hybrid.inference import create_predictor
    paddle.seed(0)
    model = tx.TransXNet(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), num_heads=(1, 1, 2, 2),
                         num_groups=(2, 2, 2, 2), mlp_ratios=(2, 2, 2, 2), img_size=64, class_num=10,
                         layer_scale_init_value=0.5)
    rng = np.random.RandomState(0)
    randomize_batch_norms(model, rng)  # statistics that make the BN folding matter
    model.eval()
    inputs = [rng.standard_normal((1, 3, 64, 64)).astype("float32") for _ in range(3)]
    with paddle.no_grad():
        expected = [model(paddle.to_tensor(x)).numpy() for x in inputs]
    model.re_parameterize()  # the inference form: what every export traces
    static = paddle.jit.to_static(model, input_spec=[InputSpec([1, 3, 64, 64], "float32", "x")], full_graph=True)
    paddle.jit.save(static, str(tmp_path / "inference"))
    predictor = create_predictor(str(tmp_path), enable_mkldnn=True, cpu_threads=1)
    for x, y in zip(inputs, expected):
        np.testing.assert_allclose(predictor(x), y, rtol=0, atol=1e-4 * np.abs(y).max())


def test_default_drop_path_follows_the_paper():
    model = pvh.create_model("TransXNet_T")
    blocks = [b for stage in model.stages for b in stage]
    assert isinstance(blocks[0].drop_path, paddle.nn.Identity)
    assert blocks[-1].drop_path.drop_prob == pytest.approx(0.1)
    assert tx.VARIANTS["TransXNet_S"].cfg["drop_path_rate"] == 0.2
    assert tx.VARIANTS["TransXNet_B"].cfg["drop_path_rate"] == 0.4
    model = pvh.create_model("TransXNet_T", drop_path_rate=0.3)
    assert [b for s in model.stages for b in s][-1].drop_path.drop_prob == pytest.approx(0.3)


def test_no_weight_decay_follows_the_authors_optimizer():
    model = pvh.create_model("TransXNet_T")
    nwd = model.no_weight_decay()
    assert {"stages.0.0.token_mixer.local_unit.bias", "stages.0.0.layer_scale_1.bias"} <= nwd
    # decayed, as in the authors' recipe (timm: ndim > 1 and not '*.bias')
    assert not any("relative_pos_enc" in n or n.endswith("layer_scale_1.weight") for n in nwd)


# ---- malformed checkpoints --------------------------------------------------------------
@pytest.fixture(scope="module")
def official_state():
    return official_random_state(official_keys("t"), seed=11)


def test_unknown_official_key_is_named(official_state):
    bad = dict(official_state, **{"network.0.0.extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(KeyError, match="network.0.0.extra.weight"):
        pvh.convert_checkpoint("TransXNet_T", bad)


def test_missing_key_is_named(official_state):
    bad = {k: v for k, v in official_state.items() if k != "network.4.2.mlp.fc1.0.weight"}
    with pytest.raises(CheckpointError, match=r"missing keys .*stages\.2\.2\.mlp\.fc1\.0\.weight"):
        load_state_dict_checked(pvh.create_model("TransXNet_T"), pvh.convert_checkpoint("TransXNet_T", bad))


def test_wrong_shape_is_named(official_state):
    bad = dict(official_state)
    bad["network.2.1.pos_embed.weight"] = np.zeros((96, 1, 5, 5), np.float32)
    with pytest.raises(CheckpointError, match=r"shape mismatches .*stages\.1\.1\.pos_embed\.weight"):
        load_state_dict_checked(pvh.create_model("TransXNet_T"), pvh.convert_checkpoint("TransXNet_T", bad))


def test_classifier_that_is_not_a_conv_is_rejected(official_state):
    bad = dict(official_state)
    bad["classifier.2.weight"] = np.zeros((1000, 448), np.float32)
    with pytest.raises(ValueError, match="classifier.2.weight"):
        pvh.convert_checkpoint("TransXNet_T", bad)
