"""``re_parameterize()``: the inference form is the same function, computed once, and the
training form is one code path (eager and traced alike).

Every registered variant is checked at a small input (the twins differ per variant: TransXNet-S/B
mix 3 and 4 kernel groups with a softmax, -T two with a sigmoid).
"""
import copy
import glob
import os

import numpy as np
import pytest

from conftest import ROOT, randomize_batch_norms

paddle = pytest.importorskip("paddle")

import ppvision_hybrid  # noqa: E402
from ppvision_hybrid.export import deploy_copy, export_inference_model  # noqa: E402
from ppvision_hybrid.layers import re_parameterize_layers  # noqa: E402
from ppvision_hybrid.registry import smallest_per_family  # noqa: E402

RTOL = 1e-5
#: every branch visible at the tolerance (TransXNet's paper layer scale is 1e-5)
BRANCH_KWARGS = {"transxnet": dict(layer_scale_init_value=0.5)}


def _model(name, **kwargs):
    paddle.seed(0)
    family = ppvision_hybrid.get_model_spec(name).family
    model = ppvision_hybrid.create_model(name, **dict(BRANCH_KWARGS.get(family, {}), **kwargs))
    randomize_batch_norms(model, np.random.RandomState(0), shift_std=0.1, min_variance=0.5)
    model.eval()
    return model


def _relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def _outputs(model, inputs):
    with paddle.no_grad():
        outs = [model(paddle.to_tensor(x)) for x in inputs]
    return [[o.numpy() for o in out] if isinstance(out, list) else out.numpy() for out in outs]


def _assert_close(got, expected, what):
    for g, e in zip(got, expected):
        for a, b in (zip(g, e) if isinstance(g, list) else [(g, e)]):
            err = _relative_error(a, b)
            assert err <= RTOL, f"{what}: relative error {err:.2e}"


INPUTS = [np.random.RandomState(0).standard_normal(s).astype("float32") for s in ((2, 3, 64, 64), (1, 3, 72, 100))]


@pytest.mark.parametrize("name", ppvision_hybrid.list_models())
def test_re_parameterize_equals_the_plain_model(name):
    model = _model(name)
    expected = _outputs(model, INPUTS)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    deployed = model.re_parameterize()
    assert deployed is model and model.is_repped
    got = _outputs(model, INPUTS)
    _assert_close(got, expected, f"{name} re-parameterized")
    # idempotent: a second call (and a second walk of the layers) changes nothing
    after = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model.re_parameterize()
    re_parameterize_layers(model)
    assert sorted(model.state_dict()) == sorted(after)
    assert all(np.array_equal(v.numpy(), after[k]) for k, v in model.state_dict().items())
    np.testing.assert_array_equal(_outputs(model, INPUTS[:1])[0], got[0])
    if ppvision_hybrid.get_model_spec(name).family in ("transxnet", "dualformer"):
        assert sorted(after) != sorted(before)  # these families have deploy twins


@pytest.mark.parametrize("name", smallest_per_family())
def test_re_parameterize_of_the_dense_backbone(name):
    model = _model(name, features_only=True)
    expected = _outputs(model, INPUTS)
    _assert_close(_outputs(model.re_parameterize(), INPUTS), expected, f"{name} features_only")


def test_re_parameterize_refuses_training_mode():
    model = ppvision_hybrid.create_model("TransXNet_T")
    model.train()
    with pytest.raises(RuntimeError, match=r"eval\(\)"):
        model.re_parameterize()
    assert not model.is_repped


def test_paddleclas_and_paddledetection_export_loops_find_it():
    """PaddleClas's export re-parameterizes every sublayer with ``re_parameterize`` whose
    ``is_repped`` is false; PaddleDetection's calls every ``convert_to_deploy``. Both loops run
    over a list taken before the calls and must work on our models as written."""
    for hook in ("paddleclas", "paddledetection"):
        model = _model("TransXNet_T")
        expected = _outputs(model, INPUTS[:1])
        wrapper = paddle.nn.Sequential(model)
        for layer in wrapper.sublayers():
            if hook == "paddleclas" and hasattr(layer, "re_parameterize") and not getattr(layer, "is_repped"):
                layer.re_parameterize()
            if hook == "paddledetection" and hasattr(layer, "convert_to_deploy"):
                layer.convert_to_deploy()
        assert model.is_repped
        _assert_close(_outputs(model, INPUTS[:1]), expected, hook)


def test_export_re_parameterizes_a_copy_and_leaves_the_model_alone(tmp_path):
    model = _model("TransXNet_T")
    model.train()  # export works from any mode; the caller's mode stays
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    types = [type(layer) for layer in model.sublayers()]
    forward = model.forward
    export_inference_model(model, str(tmp_path), image_shape=(3, 64, 64))
    assert model.training and not model.is_repped
    assert [type(layer) for layer in model.sublayers()] == types
    assert model.forward == forward and "forward" not in model.__dict__
    assert sorted(model.state_dict()) == sorted(state)
    assert all(np.array_equal(v.numpy(), state[k]) for k, v in model.state_dict().items())
    copied = deploy_copy(model)
    assert copied.is_repped and not copied.training and copied is not model


@pytest.mark.parametrize("name", smallest_per_family())
def test_traced_training_graph_equals_eager_training(name, monkeypatch):
    """One code path: ``to_static`` of the training form (train mode: batch statistics) gives the
    eager outputs, loss gradients and BatchNorm statistic updates. Eager runs the standard ops
    here, as the traced graph does (the fast kernels' equality with them: tests/test_fast_ops.py;
    gradients that are zero up to rounding are compared at 1e-10)."""
    monkeypatch.setenv("PPVH_FAST_OPS", "0")
    paddle.seed(0)
    eager = ppvision_hybrid.create_model(name, drop_path_rate=0.0, class_num=10)
    traced = copy.deepcopy(eager)
    eager.train()
    traced.train()
    spec = [paddle.static.InputSpec([2, 3, 64, 64], "float32", "x")]
    static = paddle.jit.to_static(traced, input_spec=spec, full_graph=True)
    x = paddle.to_tensor(INPUTS[0])
    outs = []
    for net in (eager, static):
        out = net(x)
        (out ** 2).mean().backward()
        outs.append(out.numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=RTOL, atol=RTOL * np.abs(outs[0]).max())
    grads = {n: p.grad.numpy() for n, p in eager.named_parameters() if p.grad is not None}
    traced_grads = {n: p.grad.numpy() for n, p in traced.named_parameters() if p.grad is not None}
    assert grads and sorted(grads) == sorted(traced_grads)
    for n, g in grads.items():
        np.testing.assert_allclose(traced_grads[n], g, rtol=1e-4, atol=1e-4 * max(np.abs(g).max(), 1e-6),
                                   err_msg=n)
    for (n, b), (_, tb) in zip(eager.named_buffers(), traced.named_buffers()):
        np.testing.assert_allclose(tb.numpy(), b.numpy(), rtol=RTOL, atol=1e-6, err_msg=n)


def test_model_code_has_one_path():
    """No eager-only branches in model code: a traced graph and eager mode run the same code."""
    for path in glob.glob(os.path.join(ROOT, "ppvision_hybrid", "models", "*.py")):
        with open(path) as f:
            text = f.read()
        for marker in ("in_dynamic_mode", "in_dygraph_mode", "not_to_static"):
            assert marker not in text, f"{os.path.relpath(path, ROOT)} uses {marker}"


@pytest.mark.parametrize("kernel, stride, padding, groups, pointwise", [
    (1, 1, 0, 1, True), (1, 1, [0, 0], 1, True), (1, 2, 0, 1, False), (1, 1, 1, 1, False),
    (1, 1, 0, 2, False), (3, 1, 1, 1, False)])
def test_conv2d_with_gives_the_fast_pointwise_conv_only_where_it_applies(kernel, stride, padding, groups, pointwise):
    from ppvision_hybrid.layers import PointwiseConv2D, conv2d_with
    paddle.seed(0)
    like = paddle.nn.Conv2D(4, 6, kernel, stride=stride, padding=padding, groups=groups)
    twin = conv2d_with(like.weight * 2.0, like.bias - 1.0, like=like)
    assert isinstance(twin, PointwiseConv2D) == pointwise
    x = paddle.randn([2, 4, 5, 7])
    expected = paddle.nn.functional.conv2d(x, like.weight * 2.0, like.bias - 1.0, stride=stride, padding=padding,
                                           groups=groups)
    np.testing.assert_allclose(twin(x).numpy(), expected.numpy(), rtol=RTOL, atol=RTOL)


def test_re_parameterized_transxnet_keeps_its_1x1_convs_pointwise():
    from ppvision_hybrid.layers import PointwiseConv2D
    model = _model("TransXNet_T").re_parameterize()
    convs = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.Conv2D)
             and tuple(layer.weight.shape[2:]) == (1, 1) and layer._groups == 1 and layer.bias is not None]
    slow = [type(layer).__name__ for layer in convs if not isinstance(layer, PointwiseConv2D)]
    assert len(convs) > 50 and not slow, f"{len(convs)} biased 1x1 convs, not PointwiseConv2D: {slow}"
