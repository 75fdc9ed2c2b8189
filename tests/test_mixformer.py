"""MixFormer-specific checks (the registry harness in test_models.py covers the common surface).

* state-dict keys, shapes and dtypes of B0 equal the official release's listing, in order;
* outputs equal the official Paddle code: tests/data/mixformer_b0_official.npz holds logits
  that the authors' model produced with deterministic weights generated here from the official
  key listing (eval at 224 and at a padded size, and a training-mode pass with BatchNorm batch
  statistics, plus running statistics it updated);
* odd sizes at downsampling, inputs smaller than a window, the gather-index layout, the
  no-weight-decay names of the official YAMLs, and tools/model_info.py.
"""
import gzip
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid.models.mixformer import window_attention_indices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
KEYS_FILE = os.path.join(DATA, "mixformer_b0_keys.txt.gz")  # the authors' MixFormer-B0 key list
RECORD_FILE = os.path.join(DATA, "mixformer_b0_official.npz")
# (name, input shape, training mode) of the recorded official forward passes
CASES = [("eval_224", (1, 3, 224, 224), False),
         ("eval_96x160", (2, 3, 96, 160), False),
         ("train_96x160", (2, 3, 96, 160), True)]
# running statistics recorded after the training-mode pass (our token-layout BatchNorm paths)
TRACKED_STATS = ["layers.0.blocks.0.attn.conv_norm._mean",
                 "layers.0.blocks.0.attn.conv_norm._variance",
                 "layers.1.blocks.1.attn.spatial_interaction.1._mean",
                 "layers.3.blocks.5.attn.spatial_interaction.1._variance"]


# ---- deterministic official-layout weights (also used to record the official outputs) -------
def read_official_keys():
    """[(name, shape, dtype)] of the official B0 state dict, in order."""
    out = []
    with gzip.open(KEYS_FILE, "rt") as f:
        for line in f:
            if not line.strip():
                continue
            name, rest = line.strip().split(" ", 1)
            shape_str, dtype = rest.rsplit(" ", 1)
            out.append((name, tuple(int(s) for s in shape_str.strip("[]").split(",") if s.strip()), dtype))
    return out


def make_official_weights(seed=0):
    """Float tensors for every official B0 key (integer index buffers are left to the model)."""
    rng = np.random.RandomState(seed)
    weights = {}
    for name, shape, dtype in read_official_keys():
        if dtype != "float32":
            continue
        if name.endswith("._variance"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("._mean"):
            arr = rng.normal(0.0, 0.1, shape)
        elif name.endswith("relative_position_bias_table"):
            arr = rng.normal(0.0, 0.5, shape)
        elif len(shape) >= 2:  # Linear [in, out] or Conv [out, in/groups, kh, kw]
            fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
            arr = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        elif name.endswith(".weight"):  # norm scales
            arr = 1.0 + rng.normal(0.0, 0.1, shape)
        else:  # biases
            arr = rng.normal(0.0, 0.05, shape)
        weights[name] = arr.astype("float32")
    return weights


def make_input(shape, seed=1):
    return np.random.RandomState(seed).normal(0.0, 1.0, shape).astype("float32")


# ---- tests ----------------------------------------------------------------------------------
def test_b0_state_dict_equals_official_listing():
    model = pvh.create_model("MixFormer_B0")
    ours = [(k, tuple(v.shape), str(v.dtype).replace("paddle.", "")) for k, v in model.state_dict().items()]
    assert ours == read_official_keys()


@pytest.mark.parametrize("name,shape,train", CASES, ids=[c[0] for c in CASES])
def test_b0_outputs_equal_official_code(name, shape, train):
    record = np.load(RECORD_FILE)
    model = pvh.create_model("MixFormer_B0")
    # The listing has no index buffers' values: load the floats, keep our computed indices.
    state = model.state_dict()
    weights = make_official_weights()
    assert set(state) - set(weights) == {k for k in state if k.endswith("relative_position_index")}
    model.set_state_dict(weights)
    model.train() if train else model.eval()
    with paddle.no_grad():
        out = model(paddle.to_tensor(make_input(shape))).numpy()
    # logits are O(1); a 1% change of one attention scale in the last block moves them by 7e-5
    np.testing.assert_allclose(out, record[name], rtol=0, atol=3e-5 if train else 1e-5)
    if train:
        state = model.state_dict()
        for key in TRACKED_STATS:
            np.testing.assert_allclose(state[key].numpy(), record["stat:" + key], rtol=1e-5, atol=1e-6)


def test_relative_position_index_matches_swin_layout():
    model = pvh.create_model("MixFormer_B0")
    index = model.layers[0].blocks[0].attn.relative_position_index.numpy()
    assert index.shape == (49, 49) and index.dtype == np.int64
    # token (0,0) vs (6,6): offset (-6,-6) -> (0,0) in the 13x13 table; diagonal is the centre
    assert index[0, 48] == 0 and index[48, 0] == 168 and (np.diag(index) == 84).all()


def test_window_attention_indices_equal_naive_partition():
    Hp, Wp, ws, nh, hd = 14, 21, 7, 3, 2
    L, N = Hp * Wp, ws * ws
    qkv = np.random.RandomState(0).randn(L, 3 * nh * hd).astype("float32")
    qkv_index, out_index = window_attention_indices(Hp, Wp, ws, nh)
    got = paddle.gather(paddle.to_tensor(qkv).reshape([-1, hd]), qkv_index).numpy()
    # naive window partition + head split: [Hp, Wp, 3, nh, hd] -> [3, nW, nh, N, hd]
    x = qkv.reshape(Hp // ws, ws, Wp // ws, ws, 3, nh, hd)
    expect = x.transpose(4, 0, 2, 5, 1, 3, 6).reshape(3, -1, nh, N, hd)
    np.testing.assert_array_equal(got.reshape(expect.shape), expect)
    # the output index inverts the layout: attention-layout v back to raster tokens
    back = paddle.gather(paddle.to_tensor(expect[2]).reshape([-1, hd]), out_index).numpy()
    np.testing.assert_array_equal(back.reshape(L, nh * hd), qkv.reshape(L, 3, nh * hd)[:, 2])


def test_odd_sizes_at_downsampling_and_pyramid_shapes():
    # 100x108 -> stem 25x27 (odd: the official ConvMerging asserts here) -> 13x14 -> 7x7 -> 4x4
    model = pvh.create_model("MixFormer_B0", class_num=10, features_only=True)
    model.eval()
    with paddle.no_grad():
        feats = model(paddle.randn([1, 3, 100, 108]))
    assert [list(f.shape) for f in feats] == [[1, 24, 25, 27], [1, 48, 13, 14], [1, 96, 7, 7], [1, 192, 4, 4]]
    assert all(bool(paddle.isfinite(f).all()) for f in feats)


def test_input_smaller_than_a_window():
    model = pvh.create_model("MixFormer_B0", class_num=10)
    model.eval()
    with paddle.no_grad():
        out = model(paddle.randn([2, 3, 20, 20]))
        feats = model.forward_pyramid(paddle.randn([1, 3, 20, 20]))
    assert out.shape == [2, 10] and bool(paddle.isfinite(out).all())
    assert [f.shape[2:] for f in feats] == [[5, 5], [3, 3], [2, 2], [1, 1]]


def test_forward_features_pools_the_last_pyramid_level():
    # forward_features = mean over tokens of GELU(last_proj(LN(stage 4))), the official head
    model = pvh.create_model("MixFormer_B0", class_num=10)
    model.eval()
    x = paddle.randn([1, 3, 64, 96])
    with paddle.no_grad():
        pooled = model.forward_features(x)
        last = model.forward_pyramid(x)[-1]
        tokens = last.flatten(2).transpose([0, 2, 1])
        manual = model.activate(model.last_proj(model.norm(tokens))).mean(axis=1)
    assert pooled.shape == [1, 1280]
    np.testing.assert_allclose(pooled.numpy(), manual.numpy(), rtol=1e-5, atol=1e-6)


def test_no_weight_decay_follows_official_yaml():
    model = pvh.create_model("MixFormer_B0")
    nwd = model.no_weight_decay()
    names = [n for n, _ in model.named_parameters()]
    assert {n for n in names if "relative_position_bias_table" in n} <= nwd
    assert {n for n in names if n.endswith(".bias")} <= nwd
    assert "layers.0.blocks.0.attn.proj_attn_norm.weight" in nwd
    assert "layers.0.blocks.0.attn.qkv.weight" not in nwd and "head.weight" not in nwd


def test_head_names_and_reset_classifier():
    model = pvh.create_model("MixFormer_B0", class_num=7)
    assert model.classifier_state_keys() == ["head.weight", "head.bias"]
    assert model.num_features == 1280 and model.out_channels == [24, 48, 96, 192]
    model.reset_classifier(0)
    model.eval()
    with paddle.no_grad():
        assert model(paddle.randn([1, 3, 32, 32])).shape == [1, 1280]


def test_factory_errors_are_clear():
    with pytest.raises(ValueError, match="SSLD"):
        pvh.create_model("MixFormer_B0", use_ssld=True)
    with pytest.raises(ValueError, match="no pretrained weights"):
        pvh.create_model("MixFormer_B0", pretrained=True)


def test_model_info_cli_prints_counts():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "model_info.py"), "MixFormer_B0"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| MixFormer_B0 | 3x224x224 | 5.099 | 0.402 | 5.099 | 0.402 |" in out.stdout, out.stdout


def test_onednn_inference_equals_dygraph(tmp_path):
    # Exported graphs run through every oneDNN fuse pass, none deleted: the window-gather indices
    # avoid the integer patterns two of them mistranslate (docs/deploy.md).
    from paddle import inference
    from ppvision_hybrid.export import export_inference_model
    from ppvision_hybrid.inference import model_files
    if not hasattr(inference.Config, "enable_mkldnn"):
        pytest.skip("no oneDNN in this Paddle build")
    model = pvh.create_model("MixFormer_B0", class_num=10)
    model.eval()
    export_inference_model(model, str(tmp_path), image_shape=(3, 224, 224))
    cfg = inference.Config(*model_files(str(tmp_path)))
    cfg.disable_gpu()
    cfg.enable_mkldnn()
    cfg.disable_glog_info()
    predictor = inference.create_predictor(cfg)
    for shape in [(1, 3, 224, 224), (2, 3, 224, 224)]:
        x = make_input(shape)
        handle = predictor.get_input_handle(predictor.get_input_names()[0])
        handle.reshape(list(shape))
        handle.copy_from_cpu(x)
        predictor.run()
        got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
        with paddle.no_grad():
            ref = model(paddle.to_tensor(x)).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
