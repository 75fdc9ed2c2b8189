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


# -- benchmarks/goals.py: one table per goal of issue 25 from its tools' JSON files --------------
import goals  # noqa: E402


def _sitting(tmp_path, monkeypatch, figures):
    """A goals.Sitting whose steps return ``figures(step, argv)`` instead of running a tool."""
    sitting = goals.Sitting(goals.parse_args(["--out", str(tmp_path)]))
    calls = []
    monkeypatch.setattr(goals.Sitting, "run", lambda self, step, argv, python=None, env=None:
                        calls.append((step, argv)) or figures(step, argv))
    return sitting, calls


def _vs(authors_ms, ours_ms, **extra):
    return dict(dict(authors_ms=authors_ms, ours_ms=ours_ms, ratio=ours_ms / authors_ms), **extra)


def _row(lines, *cells):
    return next(line for line in lines if all(f"| {c} |" in line for c in cells))


def test_goal0_puts_every_backend_beside_the_authors_eager_figures(tmp_path, monkeypatch):
    rows = dict(rows=[dict(model="TransXNet_T", dygraph=[200.0, 20.0], dygraph_reparam=[90.0, 25.0],
                           paddle_onednn=[60.0, 40.0], paddle_native=[None, None], onnxruntime=[80.0, 16.0])])

    def figures(step, argv):
        if step == "backends":
            return rows
        if step.startswith("vs_authors_TransXNet_T"):
            return _vs(100.0, 60.0) if "_b1_" in step else _vs(800.0, 400.0)  # authors 100 ms/img at b8
        return None
    sitting, _ = _sitting(tmp_path, monkeypatch, figures)
    _, _, lines = goals.goal0(sitting)
    dygraph = _row(lines, "TransXNet_T", "dygraph")
    assert "| 200.0 | 100.0 | 2.00 **missed** |" in dygraph and "| 50.0 | 100.0 | 0.50 met |" in dygraph
    assert "| 0.90 met |" in _row(lines, "TransXNet_T", "dygraph_reparam")
    assert "| n/a | 100.0 | n/a" in _row(lines, "TransXNet_T", "paddle_native")
    assert "| 62.5 | 100.0 | 0.62 met |" in _row(lines, "TransXNet_T", "onnxruntime")


def test_goal1_times_our_fastest_backend_at_both_thread_counts(tmp_path, monkeypatch):
    rows = dict(rows=[dict(model=m, paddle_onednn=[60.0, 1.0], onnxruntime=[50.0 if m == "TransXNet_T" else 90.0, 1.0])
                      for m in goals.AUTHORS])

    def figures(step, argv):
        return rows if step == "backends" else _vs(100.0, 55.0, runs=[_vs(100.0, 50.0), _vs(100.0, 55.0),
                                                                       _vs(100.0, 70.0)])
    sitting, calls = _sitting(tmp_path, monkeypatch, figures)
    _, _, lines = goals.goal1(sitting)
    ours = {argv[argv.index("--model") + 1]: argv[argv.index("--ours") + 1] for step, argv in calls
            if step.startswith("vs_authors")}
    assert ours == {"TransXNet_T": "onnxruntime", "FocalTransformer_T": "predictor", "MixFormer_B4": "predictor"}
    threads = {argv[argv.index("--threads") + 1] for step, argv in calls if step.startswith("vs_authors")}
    assert threads == {"1", "2"}
    row = _row(lines, "TransXNet_T", "1", "authors' jit.trace + freeze")
    assert "| 0.55 (0.50, 0.55, 0.70) | <= 0.6 | met |" in row
    assert "**missed**" in _row(lines, "MixFormer_B4", "2", "official Paddle dygraph")  # goal 0.4


def test_goal2_gives_the_share_of_the_gemm_peak_and_the_authors_ratio(tmp_path, monkeypatch):
    def figures(step, argv):
        if step == "gemm_peak":
            return dict(peak_gflops=400.0)
        if step == "per_gmac":  # 1 GMAC per image, 60 ms wall per batch of 8: 266.7 GFLOP/s
            return dict(runs={"TransXNet_T": [{"macs": 1e9, "onednn bN": [80.0, 60.0]}],
                              "DualFormer_T": [{"macs": 1e9, "onednn bN": [80.0, 160.0]}]})
        return _vs(800.0, 400.0) if step.startswith("vs_authors_TransXNet_T") else None
    sitting, _ = _sitting(tmp_path, monkeypatch, figures)
    _, _, lines = goals.goal2(sitting)
    assert "| TransXNet_T | 1.00 | 7.5 | 266.7 | 66.7% | met | 100.0 | 50.0 | 0.50 met |" in lines
    assert "| DualFormer_T | 1.00 | 20.0 | 100.0 | 25.0% | **missed** | n/a | n/a | n/a  |" in lines


def test_goal3_judges_the_step_ratio_and_the_loader(tmp_path, monkeypatch):
    def figures(step, argv):
        if step.startswith("loader_"):
            return dict(images_per_s=30.0)
        if step.startswith("profile_"):
            return dict(wall_ms=[3000.0], ops=[["conv2d_grad", 10, 30.0], ["add", 5, 10.0]])
        return _vs(4000.0, 3000.0, rounds=dict(ours=[3000.0, 2900.0], authors=[4000.0, 4100.0]),
                   cpu_ms=dict(ours=5800.0, authors=7900.0), peak_rss_mb=dict(ours=2200.0, authors=2100.0))
    sitting, _ = _sitting(tmp_path, monkeypatch, figures)
    _, _, lines = goals.goal3(sitting)
    row = _row(lines, "TransXNet_T")
    # 0.75 > 0.7; the loader's 30 img/s against 8 images per 3 s step: 11.2x
    assert "| 0.75 (0.75, 0.71) | <= 0.7 | **missed** | 2200 / 2100 | 30.0 | 11.2 met |" in row
    assert "| 0.75 (0.75, 0.71) | <= 0.5 | **missed** |" in _row(lines, "MixFormer_B4")
    assert any("| conv2d_grad | 10 | 30.0 | 75.0% |" in line for line in lines)


def test_goal4_and_goal5_tables(tmp_path, monkeypatch):
    small = dict(macs=1e9, cpu_ms=10.0, wall_ms=10.0, ns_per_mac=10.0, peak_share=0.2, ops=[["matmul", 1, 5.0]])
    large = dict(macs=20e9, cpu_ms=300.0, wall_ms=310.0, ns_per_mac=15.0, peak_share=0.45, ops=[["matmul", 1, 200.0]])
    dense = dict(gemm_peak_gflops=300.0, results=[dict(model="MAFormer_S", sizes={"224x224": small, "800x1333": large},
                                                       saved_graph={"800x1333": dict(cpu_ms=200.0, wall_ms=210.0)})])
    per_gmac_runs = {"MAFormer_S": [{"macs": 2e9, "eager b1": [20.0, 20.0]}],
                     "DualFormer_T": [{"macs": 1e9, "eager b1": [15.0, 15.0]}],
                     "TransXNet_T": [{"macs": 1e9, "eager b1": [8.0, 8.0]}]}

    def figures(step, argv):
        if step == "gemm_peak":
            return dict(peak_gflops=300.0)
        if step == "dense":
            return dense
        if step == "per_gmac":
            return dict(runs=per_gmac_runs)
        if step.startswith("vs_authors_"):
            return _vs(8000.0, 10000.0, rounds=dict(ours=[10000.0], authors=[8000.0]))
        return None
    sitting, _ = _sitting(tmp_path, monkeypatch, figures)
    _, _, lines = goals.goal4(sitting)
    # wall time: 2 x 20 GMACs / 0.31 s = 129 GFLOP/s = 43.0% of 300, 63.5% in the saved graph (0.21 s);
    # 15.5 ps per MAC against 10 at 224
    assert "| MAFormer_S | 20.0 | 310 | 43.0% | met | 1.55 | **missed** | 210 | 63.5% |" in lines
    assert any("ratio **1.25** (goal <= 0.6: **missed**" in line for line in lines)
    assert any("matmul 100% (x2.0)" in line for line in lines)  # 40x the time for 20x the MACs
    _, _, lines = goals.goal5(sitting)
    assert "| 10.00 (1.25) |" in _row(lines, "MAFormer_S") and _row(lines, "MAFormer_S").endswith("| met |")
    assert "| 15.00 (1.88) |" in _row(lines, "DualFormer_T") and "**missed**" in _row(lines, "DualFormer_T")
    assert _row(lines, "TransXNet_T").endswith("|  |")  # has authors' code: no verdict


def test_goals_loader_child_reads_a_config_pipeline(tmp_path):
    args = goals.parse_args(["--child", "loader", "--model", "MixFormer_B0"])
    result = goals.child_loader(args, images=8, batch=4, batches=2)
    assert result["images_per_s"] > 0 and result["batch"] == 4 and result["workers"] == 0


def test_goals_onnx_profile_child_sums_onnx_runtime_time_per_op_type(tmp_path):
    args = goals.parse_args(["--child", "onnx_profile", "--model", "MixFormer_B0", "--out", str(tmp_path),
                             "--threads", "1"])
    result = goals.child_onnx_profile(args)
    assert set(result) == {"ours"}  # no authors' file in --out
    ops = {name: ms for name, calls, ms in result["ours"]["ops"]}
    assert ops["MatMul"] > 0 and result["ours"]["nodes"] > 100 and result["ours"]["wall_ms"][0] > 0


def test_goal0_profiles_where_the_time_goes(tmp_path, monkeypatch):
    def figures(step, argv):
        if step.startswith("profile_"):
            return dict(wall_ms=[100.0], ops=[["conv2d", 10, 60.0], ["add", 5, 20.0]])
        if step.startswith("onnx_profile_"):
            return dict(ours=dict(wall_ms=[50.0], nodes=900, ops=[["Conv", 300, 30.0]]))
        return None
    sitting, calls = _sitting(tmp_path, monkeypatch, figures)
    _, _, lines = goals.goal0(sitting)
    steps = [step for step, _ in calls]
    assert "profile_torch_TransXNet_T_infer_b1" in steps and "profile_paddle_FocalTransformer_T_infer_b1_standard_ops" in steps
    # the authors' ONNX file comes from goal 1's run, made before the ONNX profile
    assert steps.index("vs_authors_TransXNet_T_infer_predictor_onnxruntime_b1_2t_224") < steps.index(
        "onnx_profile_TransXNet_T")
    assert any("our ONNX file in ONNX Runtime (900 nodes" in line for line in lines)
    assert "| conv2d | 10 | 60.0 | 75.0% |" in lines


def test_goals_gemm_peak_child_reports_wall_and_cpu_rates():
    result = goals.child_gemm_peak(goals.parse_args(["--child", "gemm_peak", "--threads", "1"]), size=256, repeats=2)
    assert result["peak_gflops"] > 0 and result["peak_gflops_cpu"] > 0
    assert set(result["figures"]) == {"paddle.matmul", "numpy"}


def test_goals_command_checks_its_options(tmp_path):
    with pytest.raises(SystemExit):
        goals.parse_args(["--goal", "7"])
    with pytest.raises(SystemExit, match="get_authors_code.sh"):
        goals.main(["--goal", "3", "--authors", str(tmp_path / "missing"), "--out", str(tmp_path)])


PADDLE_REPORT = """
-------------------------       Event Summary       -------------------------

Event                                  Calls       Total       Min.        Max.        Ave.        Ratio.
onednn_op.fc                           276         46.7666     0.037336    4.00262     0.169444    0.196994
onednn_op.reshape                      502         29.4705     0.016295    3.7826      0.0587061   0.124138
pd_op.cast                             676         9.26008     0.004497    2.40969     0.0136983   0.0390061
  PhiKernelInstruction::infermeta      676         3.32778     0.000701    2.37723     0.00492275  0.0140176

------------------------->     Profiling Report     <-------------------------
Event                                           Calls       Total       Min.        Max.        Ave.        Ratio.
thread0::onednn_op.fc                           100         1.0         0.1         0.1         0.1         0.1
"""


def test_paddle_profile_report_is_read_from_its_first_summary_top_level_events_only():
    assert goals.parse_paddle_profile(PADDLE_REPORT) == [("onednn_op.fc", 276, 46.7666),
                                                        ("onednn_op.reshape", 502, 29.4705),
                                                        ("pd_op.cast", 676, 9.26008)]
    assert goals.parse_paddle_profile("no report here") == []


def test_goals_saved_graph_profile_child_reads_paddle_inference_own_profile():
    args = goals.parse_args(["--child", "saved_graph_profile", "--model", "MixFormer_B0", "--batch", "2",
                             "--threads", "1"])
    before = set(os.listdir("."))
    result = goals.child_saved_graph_profile(args, warmup=1, calls=1)
    assert set(os.listdir(".")) == before  # Paddle's profile.log stays in the temporary folder
    ops = {name: (calls, ms) for name, calls, ms in result["ops"]}
    assert result["batch"] == 2 and result["wall_ms"][0] > 0
    assert any(name in ops for name in goals.GEMM_OPS) and all(ms >= 0 for _, ms in ops.values())


def test_goal2_and_goal5_profile_the_backends_they_judge(tmp_path, monkeypatch):
    per_gmac_runs = {m: [{"macs": macs, "eager b1": [eager, eager], "onednn b1": [onednn, onednn],
                          "onednn bN": [80.0, 80.0]}]
                     for m, macs, eager, onednn in (("MAFormer_S", 2e9, 20.0, 30.0), ("DualFormer_T", 1e9, 9.0, 10.0),
                                                    ("FocalTransformer_T", 1e9, 8.0, 5.0))}

    def figures(step, argv):
        if step == "per_gmac":
            return dict(runs=per_gmac_runs)
        if step.startswith("saved_graph_profile_"):
            return dict(wall_ms=[40.0], ops=[["onednn_op.fc", 10, 30.0], ["onednn_op.reshape", 50, 10.0]])
        if step.startswith("profile_"):
            return dict(wall_ms=[100.0], ops=[["conv2d", 10, 60.0]])
        return None
    sitting, calls = _sitting(tmp_path, monkeypatch, figures)
    _, _, lines = goals.goal2(sitting)
    steps = [step for step, _ in calls]
    assert {f"saved_graph_profile_{m}_b8" for m in goals.SMALLEST} <= set(steps)
    assert any("GEMMs and convolutions 75% of op time, everything else 25% (2 op types, 60 op calls" in line
               for line in lines)
    calls.clear()
    _, _, lines = goals.goal5(sitting)
    steps = [step for step, _ in calls]
    # MAFormer-S misses at oneDNN b1 (3x) and eager b1 (1.25x: met); DualFormer-T at oneDNN b1 (2x):
    # each missed column's profile beside the best family's (Focal-T), the best one once
    assert steps.count("saved_graph_profile_FocalTransformer_T_b1") == 1
    assert "saved_graph_profile_MAFormer_S_b1" in steps and "saved_graph_profile_DualFormer_T_b1" in steps
    assert not any(step.startswith("profile_paddle") for step in steps)
    assert any("MAFormer_S, Paddle Inference + oneDNN, batch 1" in line for line in lines)


def test_render_only_keeps_the_sittings_machine_line(tmp_path):
    args = goals.parse_args(["--out", str(tmp_path)])
    first = goals.sitting_machine_line(args)
    assert (tmp_path / "machine.txt").read_text().strip() == first
    (tmp_path / "machine.txt").write_text("the sitting's machine, load 0.10\n")
    assert goals.sitting_machine_line(goals.parse_args(["--out", str(tmp_path), "--render-only"])) == \
        "the sitting's machine, load 0.10"
    empty = tmp_path / "empty"
    empty.mkdir()
    goals.sitting_machine_line(goals.parse_args(["--out", str(empty), "--render-only"]))
    assert not (empty / "machine.txt").exists()  # a render writes nothing
