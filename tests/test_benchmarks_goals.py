"""The issue-25 goal benchmarks (benchmarks/per_gmac.py, dense_profile.py, eager_ab.py) compute
what their tables say: smoke tests on synthetic timings and one tiny real profile."""
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import dense_profile  # noqa: E402
import eager_ab  # noqa: E402
import per_gmac  # noqa: E402

def _child(macs, eager_b1, onednn_b8=None):
    """A per_gmac child result: [CPU ms, wall ms] per column."""
    out = {"macs": macs, "eager b1": [eager_b1, 2 * eager_b1], "eager bN": [8 * eager_b1, 16 * eager_b1]}
    if onednn_b8 is not None:
        out["onednn bN"] = [onednn_b8, onednn_b8]
    return out


def test_per_gmac_takes_medians_over_rounds_and_ranks_against_the_best():
    runs = {"MAFormer_S": [_child(4.5e9, 300.0, 400.0), _child(4.5e9, 280.0, 360.0), _child(4.5e9, 290.0, 380.0)],
            "DualFormer_T": [_child(1.3e9, 26.0), _child(1.3e9, 30.0), _child(1.3e9, 20.0)]}
    rows = per_gmac.per_gmac_rows(runs, batch=8)
    cells = {model: c for model, _, c in rows}
    assert cells["DualFormer_T"]["eager b1"] == pytest.approx((20.0, 1.0))  # median 26 ms / 1.3 GMACs
    assert cells["MAFormer_S"]["eager b1"] == pytest.approx((290 / 4.5, 290 / 4.5 / 20.0))
    assert cells["MAFormer_S"]["eager bN"][0] == pytest.approx(290 / 4.5)  # per image
    assert cells["MAFormer_S"]["onednn bN"] == pytest.approx((380 / 8 / 4.5, 1.0))  # alone in its column
    assert "onednn bN" not in cells["DualFormer_T"]
    wall = {m: c for m, _, c in per_gmac.per_gmac_rows(runs, batch=8, use="wall")}
    assert wall["DualFormer_T"]["eager b1"][0] == pytest.approx(40.0)
    table = per_gmac.markdown(rows, 8)
    assert "eager b8 ms/GMAC" in table and "| DualFormer_T | 1.30 | 20.0 (1.00)" in table and "n/a" in table


def test_op_growth_divides_by_the_mac_growth():
    small = [("matmul", 2, 10.0), ("softmax", 2, 1.0), ("conv2d", 5, 4.0)]
    large = [("matmul", 2, 200.0), ("softmax", 2, 200.0), ("conv2d", 5, 80.0), ("pad", 1, 5.0)]
    rows = dense_profile.op_growth(small, large, mac_ratio=20.0)
    assert [r[0] for r in rows] == ["matmul", "softmax", "conv2d", "pad"]
    growth = {r[0]: r[4] for r in rows}
    assert growth["matmul"] == pytest.approx(1.0) and growth["softmax"] == pytest.approx(10.0)
    assert growth["pad"] == float("inf")  # absent at the small size
    assert sum(r[2] for r in rows) == pytest.approx(1.0)


def test_dense_profile_measures_a_tiny_pyramid():
    args = type("Args", (), dict(steps=1, top=3, saved_graph=False, threads=1))()
    result = dense_profile.measure("DualFormer_T", [(32, 32), (64, 64)], args, peak=100.0)
    small, large = result["sizes"]["32x32"], result["sizes"]["64x64"]
    assert 3.5 < large["macs"] / small["macs"] <= 4.0  # DualFormer's MACs are linear in pixels
    assert large["cpu_ms"] > 0 and large["ops"]
    text = dense_profile.report(result, 3)
    assert "time per MAC at 64x64 / at 32x32" in text and text.count("\n|") == 5


def test_eager_ab_summary_gives_the_ratio_of_medians():
    run = lambda b, a: {"before": {"b1": [b, b * 2]}, "after": {"b1": [a, a * 2]}}  # [CPU, wall]
    lines = eager_ab.summarize({"M": [run(100, 50), run(120, 60), run(110, 70)]}, ["b1"], 8)
    assert lines[-1] == "| M | inference b1 | 110 (220) | 60 (120) | 0.55 (0.55) |"


# ---- the faster forms these benchmarks measured compute the same function ----------------------
def test_maformer_query_chunks_cover_the_queries_once():
    from ppvision_hybrid.models import maformer
    assert maformer._query_chunks(100, 100) == [(0, 100)]
    assert maformer._query_chunks(-1, 4200) == [(0, -1)]  # a dynamic size (traced graphs): one product
    chunks = maformer._query_chunks(4200, 4200)
    assert chunks[0] == (0, (1 << 20) // 4200) and chunks[-1][1] == 4200
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))


def test_maformer_chunked_attention_equals_the_whole_score_matrix(monkeypatch):
    import numpy as np
    import paddle
    from ppvision_hybrid.models import maformer
    paddle.seed(0)
    model = maformer.MAFormer(embed_dims=(16, 32, 64, 64), depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2),
                              class_num=10)
    model.eval()
    x = paddle.randn([2, 3, 64, 96])
    with paddle.no_grad():
        whole = model(x).numpy()
        monkeypatch.setattr(maformer, "_SCORE_CHUNK", 16)  # every attention of this model in chunks
        assert len(maformer._query_chunks(24, 24)) == 24
        chunked = model(x).numpy()
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5 * np.abs(whole).max())


def test_dualformer_pointwise_conv_is_nn_conv2d():
    import numpy as np
    import paddle
    from ppvision_hybrid.layers import PointwiseConv2D
    paddle.seed(0)
    conv = PointwiseConv2D(8, 12)
    reference = paddle.nn.Conv2D(8, 12, 1)
    reference.set_state_dict(conv.state_dict())
    assert sorted(conv.state_dict()) == sorted(reference.state_dict())
    x = paddle.randn([2, 8, 5, 7])
    x.stop_gradient = False
    grads = []
    for layer in (conv, reference):
        out = layer(x)
        (out * out).sum().backward()
        grads.append((out.numpy(), x.grad.numpy().copy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()))
        x.clear_gradient()
    assert np.array_equal(grads[0][0], grads[1][0])  # the same sums: bitwise
    for a, b in zip(grads[0][1:], grads[1][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
