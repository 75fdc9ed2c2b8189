"""Checks every registered variant (parametrised over the registry): a new variant is tested
by being registered."""
import os
import tempfile

import numpy as np
import paddle
import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid.flops import count_macs, count_params
from ppvision_hybrid.registry import get_model_spec, smallest_per_family
from conftest import FULL

ALL = pvh.list_models()


SMALL = ALL if FULL else smallest_per_family()
_cache = {}


def _model(name, **kw):
    key = (name, tuple(sorted(kw.items())))
    if key not in _cache:
        paddle.seed(0)
        _cache.clear()  # keep memory flat: one model alive at a time
        _cache[key] = pvh.create_model(name, class_num=10, **kw)
    return _cache[key]


def _test_side(name):
    spec = get_model_spec(name)
    return max(64, spec.min_input)


def test_registry_lists_every_family():
    assert set(pvh.list_families()) >= {"mixformer"}
    assert pvh.list_models("MixFormer_B*") == [f"MixFormer_B{i}" for i in range(7)]
    # one variant per family, the one with the fewest reference parameters
    smallest = smallest_per_family()
    assert sorted(get_model_spec(n).family for n in smallest) == pvh.list_families()
    for name in smallest:
        family = get_model_spec(name).family
        fewest = min(get_model_spec(n).reference.get("params", float("inf"))
                     for n in pvh.list_models(family=family))
        assert get_model_spec(name).reference.get("params", float("inf")) == fewest, name


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(KeyError, match="Did you mean"):
        pvh.create_model("MixFormer_B44")


@pytest.mark.parametrize("name", ALL)
def test_counts_match_reference(name):
    spec = get_model_spec(name)
    ref = spec.reference
    assert "params" in ref and "macs" in ref, f"{name} registers no reference counts"
    model = pvh.create_model(name)
    params = count_params(model)
    macs = count_macs(model, spec.default_input)
    assert abs(params / ref["params"] - 1) <= ref.get("params_tol", 0.01), (params, ref)
    assert abs(macs / ref["macs"] - 1) <= ref.get("macs_tol", 0.01), (macs, ref)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_every_parameter_gets_a_gradient(name):
    model = _model(name)
    model.train()
    side = _test_side(name)
    x = paddle.randn([2, 3, side, side])
    out = model(x)
    assert out.shape == [2, 10]
    assert bool(paddle.isfinite(out).all())
    out.sum().backward()
    no_grad = [n for n, p in model.named_parameters() if not p.stop_gradient and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:10]}"
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not bool(paddle.isfinite(p.grad).all())]
    assert not bad, f"non-finite gradients: {bad[:10]}"
    model.clear_gradients()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(1, 3, 97, 131), (2, 3, 160, 256), (1, 3, 203, 317)])
def test_forward_odd_sizes(name, shape):
    if shape[2] * shape[3] > 160 * 256 and name not in SMALL:
        pytest.skip("largest odd size checked on the smallest variant per family (PPVH_FULL_TESTS=1 for all)")
    model = _model(name)
    model.eval()
    with paddle.no_grad():
        out = model(paddle.randn(list(shape)))
    assert out.shape == [shape[0], 10]
    assert bool(paddle.isfinite(out).all())


@pytest.mark.parametrize("name", ALL)
def test_pyramid_features_strides_and_channels(name):
    model = pvh.create_model(name, class_num=10, features_only=True, out_indices=(0, 1, 2, 3))
    model.eval()
    H, W = 97, 131
    with paddle.no_grad():
        feats = model(paddle.randn([1, 3, H, W]))
    assert len(feats) == 4
    for i, f in enumerate(feats):
        info = model.feature_info[i]
        assert info["stride"] == 4 * 2 ** i
        assert f.shape[1] == info["channels"], (i, f.shape, info)
        # Padding may round a side up at each downsampling step.
        assert abs(f.shape[2] - H / info["stride"]) <= 1.0 and abs(f.shape[3] - W / info["stride"]) <= 1.0, (i, f.shape)
        assert bool(paddle.isfinite(f).all())
    assert model.out_channels == [fi["channels"] for fi in model.feature_info]


@pytest.mark.parametrize("name", SMALL)
def test_features_only_has_no_classifier_and_takes_a_classification_checkpoint(name, tmp_path):
    """``features_only=True`` means the same in every family: no classifier and no other head
    piece (every parameter feeds the pyramid), while a classification checkpoint loads into it
    through the dense loading path with only the head's keys ignored."""
    from ppvision_hybrid.adapters.common import load_classification_weights
    paddle.seed(0)
    classifier = pvh.create_model(name, class_num=10)
    dense = pvh.create_model(name, class_num=10, features_only=True)
    assert not dense.has_classifier()
    names = [n for n, _ in dense.named_parameters()]
    assert not [n for n in names if n.startswith(tuple(dense.classifier_prefixes))], names
    with pytest.raises(RuntimeError, match="no classifier"):
        dense.forward_features(paddle.randn([1, 3, 64, 64]))
    side = _test_side(name)
    sum(f.mean() for f in dense(paddle.randn([1, 3, side, side]))).backward()
    unused = [n for n, p in dense.named_parameters() if not p.stop_gradient and p.grad is None]
    assert not unused, f"features_only {name} builds parameters the pyramid never uses: {unused}"
    path = str(tmp_path / f"{name}.pdparams")
    paddle.save(classifier.state_dict(), path)
    fresh = load_classification_weights(dense, name, path, {"class_num": 10})
    ours, theirs = dense.state_dict(), classifier.state_dict()
    assert set(fresh) == set(ours) - set(theirs)  # only the dense-only output norms start fresh
    assert set(theirs) - set(ours), "the classification head's keys"
    for key in set(ours) & set(theirs):
        np.testing.assert_array_equal(ours[key].numpy(), theirs[key].numpy(), err_msg=key)


@pytest.mark.parametrize("name", ALL)
def test_surface_no_weight_decay_and_reset_classifier(name):
    model = _model(name)
    names = {n for n, _ in model.named_parameters()}
    nwd = model.no_weight_decay()
    assert nwd <= names
    model.reset_classifier(5)
    model.eval()
    side = _test_side(name)
    with paddle.no_grad():
        assert model(paddle.randn([1, 3, side, side])).shape == [1, 5]
    _cache.clear()


@pytest.mark.parametrize("name", SMALL)
def test_bad_input_is_a_clear_error(name):
    model = _model(name)
    with pytest.raises(ValueError, match="input channels"):
        model(paddle.randn([1, 4, 64, 64]))
    with pytest.raises(ValueError, match="4-D"):
        model(paddle.randn([3, 64, 64]))


@pytest.mark.parametrize("name", SMALL)
def test_export_round_trip_dynamic_hw(name):
    model = _model(name)
    model.eval()
    from ppvision_hybrid.export import export_inference_model
    with tempfile.TemporaryDirectory() as d:
        prefix = export_inference_model(model, d, dynamic_hw=True)
        # the caller's model stays eager: ``ref`` below is the eager output, not the traced program
        assert "forward" not in model.__dict__
        loaded = paddle.jit.load(prefix)
        for shape in [(2, 3, 64, 64), (1, 3, 97, 131)]:
            x = paddle.randn(list(shape))
            with paddle.no_grad():
                ref = model(x).numpy()
                got = loaded(x).numpy()
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("name", SMALL)
def test_state_dict_round_trip_and_mismatch(name):
    model = _model(name)
    model.eval()
    x = paddle.randn([1, 3, 64, 64])
    with paddle.no_grad():
        ref = model(x).numpy()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.pdparams")
        paddle.save(model.state_dict(), path)
        paddle.seed(123)
        fresh = pvh.create_model(name, class_num=10, pretrained=path)
        fresh.eval()
        with paddle.no_grad():
            np.testing.assert_array_equal(fresh(x).numpy(), ref)
        # A different class count drops the head with a message and loads the rest.
        with pytest.warns(UserWarning, match="classifier weights"):
            pvh.create_model(name, class_num=7, pretrained=path)
        # Missing and mis-shaped keys are named.
        state = paddle.load(path)
        key = next(k for k in state if k not in model.classifier_state_keys() and len(state[k].shape) >= 1)
        del state[key]
        paddle.save(state, path)
        with pytest.raises(ValueError, match="missing keys"):
            pvh.create_model(name, class_num=10, pretrained=path)
