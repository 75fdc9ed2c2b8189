"""The fast CPU kernels (layers/fast_ops.py, csrc/): equal to Paddle's standard ops in outputs and
gradients, used only in eager CPU float32 calls (saved graphs keep standard ops), built once and
cached, and replaced by the standard ops with a one-line note where no compiler exists.

These tests fail, not skip, when the kernels cannot be built on a machine that has a C++ compiler:
install.sh builds them, and the suite is where a divergence or a broken build must show."""
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

from ppvision_hybrid.layers import GELU, DepthwiseConv2D, bicubic_resize, depthwise_conv2d, fast_ops, gelu
from ppvision_hybrid.layers.depthwise import fast_depthwise_applies, per_sample_depthwise_conv2d

from conftest import ROOT

HAS_COMPILER = fast_ops._compiler() is not None


def _fast_ops():
    ops = fast_ops.load_fast_ops()
    if HAS_COMPILER:  # a machine with g++ must have working kernels
        assert ops is not None and {"ppvh_depthwise_conv2d", "ppvh_gelu", "ppvh_bicubic_resize"} <= set(ops), \
            "the fast CPU kernels did not build (see the ppvision_hybrid note on stderr)"
    return ops


def _grads(fn, inputs, upstream):
    out = fn(*inputs)
    return [out] + list(paddle.grad(out, inputs, upstream))


# (N, C, H, W, kh, kw, stride, padding, bias): the "same" stride-1 convs of the vectorised path
# (odd square filters, widths not a multiple of 16) and the other geometries the models use
# (OSRA's k = sr + 3 stride sr, DualFormer's strided ones, MAFormer's 1x3, 1x1 layer scales).
GEOMETRIES = [
    (2, 5, 9, 37, 3, 3, 1, 1, True), (1, 4, 20, 16, 5, 5, 1, 2, True), (2, 6, 13, 10, 7, 7, 1, 3, False),
    (2, 3, 9, 9, 9, 9, 1, 4, True), (1, 2, 30, 19, 11, 11, 1, 5, True), (2, 3, 7, 7, 7, 7, 1, 3, True),
    (3, 4, 17, 15, 11, 11, 8, 5, True), (1, 3, 8, 8, 5, 5, 2, 2, False), (2, 3, 6, 9, 3, 3, 2, 0, True),
    (2, 4, 7, 7, 1, 1, 1, 0, True), (2, 4, 6, 10, 1, 3, 1, (0, 1), True), (2, 3, 12, 12, 4, 4, 4, 0, False),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_depthwise_conv_equals_the_standard_op_with_gradients(geometry):
    _fast_ops()
    n, c, h, w, kh, kw, stride, padding, with_bias = geometry
    rng = np.random.RandomState(0)
    x = paddle.to_tensor(rng.standard_normal((n, c, h, w)).astype("float32"), stop_gradient=False)
    weight = paddle.to_tensor(rng.standard_normal((c, 1, kh, kw)).astype("float32"), stop_gradient=False)
    bias = paddle.to_tensor(rng.standard_normal(c).astype("float32"), stop_gradient=False) if with_bias else None
    inputs = [x, weight] + ([bias] if with_bias else [])
    assert fast_depthwise_applies(x, weight, stride, padding) == HAS_COMPILER
    out_shape = F.conv2d(x, weight, None, stride, padding, groups=c).shape
    upstream = paddle.to_tensor(rng.standard_normal(out_shape).astype("float32"))
    expected = _grads(lambda *a: F.conv2d(a[0], a[1], a[2] if with_bias else None, stride, padding, groups=c),
                      inputs, upstream)
    got = _grads(lambda *a: depthwise_conv2d(a[0], a[1], a[2] if with_bias else None, stride, padding),
                 inputs, upstream)
    for name, e, g in zip(("output", "dx", "dweight", "dbias"), expected, got):
        scale = float(np.abs(e.numpy()).max())
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=0, atol=2e-6 * scale, err_msg=name)


def test_depthwise_layer_is_a_conv2d_with_the_same_state_dict():
    paddle.seed(3)
    fast = DepthwiseConv2D(6, 5, padding=2)
    paddle.seed(3)
    plain = nn.Conv2D(6, 6, 5, padding=2, groups=6)
    assert isinstance(fast, nn.Conv2D)
    assert {k: v.shape for k, v in fast.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    plain.set_state_dict(fast.state_dict())
    x = paddle.randn([2, 6, 11, 13])
    np.testing.assert_allclose(fast(x).numpy(), plain(x).numpy(), rtol=0, atol=1e-5)
    no_bias = DepthwiseConv2D(6, 3, stride=2, padding=1, bias_attr=False)
    assert list(no_bias.state_dict()) == ["weight"]
    np.testing.assert_allclose(no_bias(x).numpy(), F.conv2d(x, no_bias.weight, None, 2, 1, groups=6).numpy(),
                               rtol=0, atol=1e-5)


def test_gelu_equals_the_standard_op_with_gradients():
    _fast_ops()
    rng = np.random.RandomState(0)
    # the tails (|x| up to 12), around 0, and an odd length (a partial last vector)
    values = np.concatenate([np.linspace(-12, 12, 20001), rng.standard_normal(1037), [0.0, -0.0, 1e-30]])
    x = paddle.to_tensor(values.astype("float32"), stop_gradient=False)
    upstream = paddle.to_tensor(rng.standard_normal(x.shape).astype("float32"))
    expected = _grads(F.gelu, [x], upstream)
    got = _grads(gelu, [x], upstream)
    for name, e, g in zip(("output", "dx"), expected, got):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=2e-6, atol=1e-6, err_msg=name)
    big = paddle.randn([3, 17, 29, 31])  # several parallel chunks
    np.testing.assert_allclose(GELU()(big).numpy(), F.gelu(big).numpy(), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(gelu(big, approximate=True).numpy(), F.gelu(big, approximate=True).numpy(),
                               rtol=0, atol=0)


class _Block(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = DepthwiseConv2D(4, 3, padding=1)
        self.act = GELU()

    def forward(self, x):
        resized = bicubic_resize(bicubic_resize(x, 13, 5), 9, 9)
        return self.act(self.conv(x)) + gelu(depthwise_conv2d(x, self.conv.weight, None, 1, 1)) + resized


def test_saved_graphs_keep_the_standard_ops(tmp_path):
    _fast_ops()
    block = _Block()
    block.eval()
    x = paddle.randn([2, 4, 9, 9])
    eager = block(x).numpy()
    static = paddle.jit.to_static(block, input_spec=[paddle.static.InputSpec([None, 4, 9, 9], "float32")],
                                  full_graph=True)
    paddle.jit.save(static, str(tmp_path / "block"))
    program = static.forward.concrete_program.main_program
    op_names = {op.name() for op in program.global_block().ops}
    assert not any("ppvh" in name for name in op_names), op_names
    assert any("conv2d" in name for name in op_names) and any("gelu" in name for name in op_names), op_names
    loaded = paddle.jit.load(str(tmp_path / "block"))
    np.testing.assert_allclose(loaded(x).numpy(), eager, rtol=0, atol=1e-5)


def test_to_static_default_mode_training_through_the_dispatch_points():
    """``paddle.jit.to_static`` without ``full_graph`` (SOT, what PaddleClas's ``Global.to_static``
    uses) translates the dispatch points (it failed inside them before they asked
    ``fast_ops.eager_execution``), and a training step through the traced block gives the eager
    (fast-kernel) outputs and gradients. (SOT may run a graph this small eagerly, so whether the
    custom ops ran is not asserted here; graphs it builds get the standard ops.)"""
    import copy
    _fast_ops()
    paddle.seed(0)
    block = _Block()
    traced = paddle.jit.to_static(copy.deepcopy(block))
    x = paddle.randn([2, 4, 9, 9])
    x.stop_gradient = False
    eager_out = block(x)
    eager_grads = paddle.grad(eager_out.sum(), [x, block.conv.weight])
    for _ in range(2):  # the translating call, then the cached program
        traced_out = traced(x)
        traced_grads = paddle.grad(traced_out.sum(), [x, traced.conv.weight])
        np.testing.assert_allclose(traced_out.numpy(), eager_out.numpy(), rtol=1e-5, atol=1e-5)
        for got, want in zip(traced_grads, eager_grads):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


def test_other_devices_dtypes_and_precisions_use_the_standard_op():
    _fast_ops()
    x = paddle.randn([1, 3, 8, 8])
    w = paddle.randn([3, 1, 3, 3])
    assert not fast_depthwise_applies(x.astype("float64"), w.astype("float64"), 1, 1)
    assert not fast_depthwise_applies(x, w, 1, 1, dilation=2)
    assert not fast_depthwise_applies(x, w, 1, 1, data_format="NHWC")
    assert not fast_depthwise_applies(x, paddle.randn([6, 1, 3, 3]), 1, 1)  # a channel multiplier
    out = depthwise_conv2d(x.astype("float64"), w.astype("float64"), None, 1, 1)
    np.testing.assert_allclose(out.numpy(), F.conv2d(x.astype("float64"), w.astype("float64"), padding=1,
                                                     groups=3).numpy(), rtol=1e-12)


def test_without_a_compiler_one_note_and_the_standard_ops(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PPVISION_HYBRID_HOME", str(tmp_path))  # nothing cached here
    monkeypatch.setattr(fast_ops, "_compiler", lambda: None)
    monkeypatch.setattr(fast_ops, "_state", {"loaded": False, "ops": None})
    x = paddle.randn([2, 3, 8, 8])
    w = paddle.randn([3, 1, 3, 3])
    out = depthwise_conv2d(x, w, None, 1, 1)
    gelu(x)  # a second use: no second note
    err = capsys.readouterr().err
    assert err.count("ppvision_hybrid:") == 1 and "no C++ compiler found" in err
    assert "\n" not in err.strip()  # one line
    np.testing.assert_allclose(out.numpy(), F.conv2d(x, w, padding=1, groups=3).numpy(), rtol=0, atol=0)
    monkeypatch.setenv("PPVH_FAST_OPS", "0")
    assert fast_ops.load_fast_ops() is None


@pytest.mark.skipif(not HAS_COMPILER, reason="needs a C++ compiler (no compiler: the test above)")
def test_built_once_then_loaded_from_the_cache(tmp_path):
    """A fresh cache: the first process builds (with its one-line note) and the result lands
    whole under a key of source, Paddle version and CPU; a second process only loads it."""
    env = dict(os.environ, PPVISION_HYBRID_HOME=str(tmp_path), PYTHONPATH=ROOT)
    code = ("import paddle; from ppvision_hybrid.layers import fast_ops, depthwise_conv2d; "
            "print(fast_ops.load_fast_ops()); print(fast_ops.fast_ops_dir())")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "building the fast CPU kernels once" in first.stderr and "ppvh_depthwise_conv2d" in first.stdout
    directory = first.stdout.strip().splitlines()[-1]
    assert directory.startswith(str(tmp_path / "ops" / f"paddle{paddle.__version__}-"))
    assert os.path.exists(os.path.join(directory, "ppvh_fast_ops", "ppvh_fast_ops.so"))
    assert not [d for d in os.listdir(tmp_path / "ops") if ".build-" in d]  # no half-built folder left
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "ppvh_gelu" in second.stdout
    assert "building" not in second.stderr


def test_a_failed_build_is_one_note_and_the_standard_ops(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PPVISION_HYBRID_HOME", str(tmp_path))
    monkeypatch.setattr(fast_ops, "_compiler", lambda: "/usr/bin/c++")
    monkeypatch.setattr(fast_ops, "_state", {"loaded": False, "ops": None})
    monkeypatch.setattr(fast_ops, "_BUILD_SCRIPT", "import sys; sys.exit('compiler exploded')")
    assert fast_ops.load_fast_ops() is None
    err = capsys.readouterr().err
    assert "ppvision_hybrid: fast CPU kernels unavailable (building the fast CPU kernels failed" in err
    assert "using Paddle's standard ops" in err and err.count("\n") == 2  # the build note, then this
    assert "compiler exploded" in (tmp_path / "ops" / "build-failed.log").read_text()
    assert not [d for d in os.listdir(tmp_path / "ops") if ".build-" in d]


@pytest.mark.parametrize("shape, size", [((1, 2, 196, 49), (3136, 49)), ((2, 3, 17, 9), (40, 5)),
                                         ((1, 1, 64, 49), (700, 150)), ((1, 4, 50, 60), (7, 9))])
def test_bicubic_resize_is_bitwise_the_standard_form_with_gradients(shape, size):
    """The kernel repeats the standard form's arithmetic operation for operation (forward bitwise
    equal), which is TransXNet's resize of its relative position term (so the model can switch)."""
    from ppvision_hybrid.layers.resample import _bicubic_axis
    from ppvision_hybrid.models.transxnet import resize_relative_position
    _fast_ops()
    rng = np.random.RandomState(0)
    x = paddle.to_tensor(rng.standard_normal(shape).astype("float32"), stop_gradient=False)
    standard = _bicubic_axis(_bicubic_axis(x, size[0], axis=2), size[1], axis=3)
    fast = bicubic_resize(x, *size)
    assert fast.shape == standard.shape == [shape[0], shape[1], *size]
    np.testing.assert_array_equal(fast.numpy(), standard.numpy())
    np.testing.assert_array_equal(resize_relative_position(x, *size).numpy(), standard.numpy())
    upstream = paddle.to_tensor(rng.standard_normal(standard.shape).astype("float32"))
    (expected,), (got,) = paddle.grad(standard, [x], upstream), paddle.grad(fast, [x], upstream)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=2e-6 * float(np.abs(expected.numpy()).max()))


def test_bicubic_resize_matches_pytorch_semantics_not_paddles():
    """Documented behaviour: PyTorch's bicubic (the authors' F.interpolate), checked on a case
    worked by hand: upsampling [0, 1] by 2 along W gives Keys' taps at 1/4 and 3/4."""
    x = paddle.to_tensor(np.array([[[[0.0, 1.0]]]], np.float32))
    out = bicubic_resize(x, 1, 4).numpy().ravel()
    a = -0.75  # taps at offsets -1..2 around 0.25 / 0.75 with borders clamped; -0.25 clamps to 0
    w = lambda t: [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a, ((a + 2) * t - (a + 3)) * t * t + 1,
                   ((a + 2) * (1 - t) - (a + 3)) * (1 - t) ** 2 + 1, ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
    expected = [sum(wi * v for wi, v in zip(w(0.75), [0, 0, 0, 1])), sum(wi * v for wi, v in zip(w(0.25), [0, 0, 1, 1])),
                sum(wi * v for wi, v in zip(w(0.75), [0, 0, 1, 1])), sum(wi * v for wi, v in zip(w(0.25), [0, 1, 1, 1]))]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("column_matmul", [True, False], ids=["column-matmul", "column-conv"])
def test_per_sample_depthwise_conv_eager_form_equals_the_saved_graph_form(column_matmul, monkeypatch):
    """TransXNet's re-parameterized IDConv: eager mode runs the grouped form on the fast kernel,
    saved graphs the static-kernel form; both equal a per-sample F.conv2d, gradients included."""
    from ppvision_hybrid.models import transxnet as tx
    _fast_ops()
    monkeypatch.setattr(tx, "COLUMN_MATMUL_MAX_HEIGHT", 64 if column_matmul else 0)
    layer = tx.IDConv(12, kernel_size=5, num_groups=2)
    layer.eval()
    deploy = layer.deploy_twin()
    x = paddle.randn([2, 12, 11, 9])
    x.stop_gradient = False
    kernels = deploy.dynamic_mixer(x)
    upstream = paddle.randn([2, 12, 11, 9])
    used = []

    def saved_graph_form(inputs, mixer):
        used.append(True)
        return deploy.conv_separable(inputs, mixer)

    eager = per_sample_depthwise_conv2d(x, kernels, saved_graph_form)
    assert used == ([] if HAS_COMPILER else [True])
    static = deploy.conv_separable(x, kernels)
    reference = paddle.concat([F.conv2d(x[i:i + 1], kernels[i * 12:(i + 1) * 12, :5, :5].unsqueeze(1),
                                        kernels[i * 12:(i + 1) * 12, 5, 5], padding=2, groups=12) for i in range(2)])
    for got in (eager, static):
        np.testing.assert_allclose(got.numpy(), reference.numpy(), rtol=0, atol=1e-5)
        (dx, dkernels), (ex, ekernels) = paddle.grad(got, [x, kernels], upstream), \
            paddle.grad(reference, [x, kernels], upstream)
        # the kernel and bias slots; the zero slots between them are not read by every form
        pairs = [(dx, ex), (dkernels[:, :5, :5], ekernels[:, :5, :5]), (dkernels[:, 5, 5], ekernels[:, 5, 5])]
        for g, e in pairs:
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=0, atol=1e-5 * float(e.abs().max()))
