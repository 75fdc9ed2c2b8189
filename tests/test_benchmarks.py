"""benchmarks/vs_authors.py runs end to end (a stand-in for the authors' code, tiny input); ppvh-benchmark's
(ppvision_hybrid.benchmark, wrapped by tools/benchmark.py) report options."""
import json
import os
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import vs_authors  # noqa: E402


STAND_IN = ("import paddle\n"
            "def build(width=8):\n"
            "    return paddle.nn.Sequential(paddle.nn.Conv2D(3, width, 3), paddle.nn.ReLU())\n"
            "def classifier(width=4):  # 1000 logits, for the training step\n"
            "    return paddle.nn.Sequential(paddle.nn.Conv2D(3, width, 3), paddle.nn.AdaptiveAvgPool2D(1),\n"
            "                                paddle.nn.Flatten(), paddle.nn.Linear(width, 1000))\n"
            "def broken():\n"
            "    raise RuntimeError('no such model here')\n")


def run_against_stand_in(tmp_path, builder, *options):
    """vs_authors.main with a tiny Paddle stand-in for the authors' model and our MixFormer-B0 at 64x64."""
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    return vs_authors.main([
        "--model", "MixFormer_B0", "--authors-framework", "paddle", "--authors-path", str(tmp_path),
        "--authors-build", "stand_in:" + builder, "--image-size", "64", "--warmup", "0", *options])


def test_vs_authors_alternates_processes_and_reports_a_ratio(tmp_path, capsys):
    result = run_against_stand_in(tmp_path, "build", "--authors-kwargs", '{"width": 4}', "--rounds", "2",
                                  "--repeats", "1")
    assert len(result["rounds"]["authors"]) == len(result["rounds"]["ours"]) == 2
    assert result["ratio"] == pytest.approx(result["ours_ms"] / result["authors_ms"])
    assert result["best_ratio"] == pytest.approx(result["ours_best_ms"] / result["authors_best_ms"])
    assert result["ours_best_ms"] <= result["ours_ms"] and result["authors_best_ms"] <= result["authors_ms"]
    out = capsys.readouterr().out
    assert "| MixFormer_B0 | paddle (stand_in:build) |" in out and "best calls: authors" in out
    assert "intermediates kept" in out  # the predictor setting the deploy config ships


def test_vs_authors_interleaved_keeps_both_processes_and_pairs_single_calls(tmp_path, capsys):
    result = run_against_stand_in(tmp_path, "build", "--interleave", "3", "--gap-ms", "1")
    calls = result["calls"]
    assert len(calls["authors"]) == len(calls["ours"]) == 3 and min(calls["authors"] + calls["ours"]) > 0
    ratios = sorted(o / a for o, a in zip(calls["ours"], calls["authors"]))
    assert result["pair_ratio"] == pytest.approx(ratios[1])
    assert result["ratio"] == pytest.approx(sorted(calls["ours"])[1] / sorted(calls["authors"])[1])
    assert "interleaved, 3 calls per side: median of per-pair ratios" in capsys.readouterr().out
    assert result["peak_rss_mb"]["ours"] > 0 and result["peak_rss_mb"]["authors"] > 0
    assert result["cpu_ms"]["ours"] > 0 and result["cpu_ms"]["authors"] > 0


def test_vs_authors_fails_when_the_goal_is_missed(capsys):
    vs_authors.check_goal(0.8, 0.8)  # at the goal: met
    vs_authors.check_goal(5.0, None)  # no goal given
    with pytest.raises(SystemExit) as failed:
        vs_authors.check_goal(0.81, 0.8)
    assert failed.value.code == 1 and "goal missed: ratio 0.81 > 0.80" in capsys.readouterr().err


def test_vs_authors_interleaved_reports_a_failing_side(tmp_path):
    with pytest.raises(SystemExit, match="authors run failed(.|\n)*no such model here"):
        run_against_stand_in(tmp_path, "broken", "--interleave", "2", "--gap-ms", "1")


def test_vs_authors_forwards_the_predictor_settings_to_our_process():
    args = vs_authors.parse_args(["--model", "TransXNet_T", "--authors-build", "m:f", "--model-dir", "d"])
    assert "--free-intermediates" not in vs_authors._forward_args(args)
    args = vs_authors.parse_args(["--model", "TransXNet_T", "--authors-build", "m:f", "--model-dir", "d",
                                  "--free-intermediates", "--no-onednn"])
    forwarded = vs_authors.parse_args(vs_authors._forward_args(args))
    assert forwarded.free_intermediates and forwarded.no_onednn


def test_only_our_side_is_pinned_and_with_the_library_setting(monkeypatch):
    from ppvision_hybrid.inference import CPU_AFFINITY
    from ppvision_hybrid import benchmark
    monkeypatch.delenv("KMP_AFFINITY", raising=False)
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    assert benchmark.PIN_AFFINITY == CPU_AFFINITY
    # MKL's AVX2 path on AMD CPUs for both sides (the authors' Paddle code uses MKL in dygraph)
    assert vs_authors._thread_env(2, pin=False)["MKL_DEBUG_CPU_TYPE"] == "5"
    assert vs_authors._thread_env(2, pin=True)["KMP_AFFINITY"] == CPU_AFFINITY
    assert "KMP_AFFINITY" not in vs_authors._thread_env(2, pin=False)
    monkeypatch.setenv("KMP_AFFINITY", "disabled")  # a user's own setting wins
    assert vs_authors._thread_env(2, pin=True)["KMP_AFFINITY"] == "disabled"
    monkeypatch.delenv("KMP_AFFINITY")
    monkeypatch.setattr(os, "environ", dict(os.environ))  # _set_environment writes the environment
    assert benchmark._set_environment(1)["KMP_AFFINITY"] == CPU_AFFINITY


def test_vs_authors_needs_the_authors_model():
    with pytest.raises(SystemExit, match="--authors-build"):
        vs_authors.main(["--model", "MixFormer_B0"])


def test_cpu_and_gpu_tables_are_separate_blocks(tmp_path):
    """A GPU run (usually on another machine) must not overwrite the CPU table, nor the reverse."""
    from ppvision_hybrid import benchmark
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nhand-written notes\n")
    benchmark.write_report(str(report), "CPU TABLE 1")
    benchmark.write_report(str(report), "GPU TABLE 1", (benchmark.GPU_BEGIN, benchmark.GPU_END))
    benchmark.write_report(str(report), "CPU TABLE 2")
    text = report.read_text()
    assert "hand-written notes" in text and "CPU TABLE 2" in text and "GPU TABLE 1" in text
    assert "CPU TABLE 1" not in text
    benchmark.write_report(str(report), "GPU TABLE 2", (benchmark.GPU_BEGIN, benchmark.GPU_END))
    text = report.read_text()
    assert "GPU TABLE 2" in text and "GPU TABLE 1" not in text and "CPU TABLE 2" in text


def test_gpu_backends_without_a_gpu_are_reported_not_fatal(tmp_path, capsys):
    from ppvision_hybrid import benchmark
    if benchmark_has_gpu():
        pytest.skip("this machine has a GPU build of Paddle")
    code = benchmark.main(["--models", "MixFormer_B0", "--image_size", "64", "--backends", "dygraph", "--gpu",
                           "--warmup", "0", "--repeats", "1", "--repeats_batch", "1", "--batch", "2",
                           "--output", str(tmp_path / "b.md"), "--write"])
    out = capsys.readouterr().out
    assert code == 0
    assert "MixFormer_B0 dygraph_gpu: unavailable" in out and "MixFormer_B0 paddle_gpu: unavailable" in out
    row = [line for line in (tmp_path / "b.md").read_text().splitlines() if line.startswith("| MixFormer_B0")][0]
    assert row.count("n/a") == 4  # latency and throughput of the two GPU backends
    assert "benchmark-gpu:begin" in (tmp_path / "b.md").read_text()


def benchmark_has_gpu():
    import paddle
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def test_vs_authors_training_step_mode_times_both_sides_and_their_memory(tmp_path, capsys):
    """--mode train: forward, backward and AdamW per call on both sides (ours eager), batch 2."""
    result = run_against_stand_in(tmp_path, "classifier", "--mode", "train", "--batch", "2", "--rounds", "1",
                                  "--repeats", "1", "--json", str(tmp_path / "train.json"))
    assert result["mode"] == "train" and result["batch"] == 2 and result["ours_backend"].startswith("dygraph training")
    assert result["peak_rss_mb"]["ours"] > 100 and result["peak_rss_mb"]["authors"] > 100
    out = capsys.readouterr().out
    assert "dygraph training step (AdamW)" in out and "ms/img)" in out and "peak resident memory" in out
    assert result["cpu_ms"]["ours"] > 0 and "CPU time per call (all threads)" in out
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved["ratio"] == pytest.approx(result["ratio"]) and len(saved["runs"]) == 1


def test_vs_authors_batch_and_our_dygraph_backend(tmp_path, capsys):
    result = run_against_stand_in(tmp_path, "build", "--ours", "dygraph", "--batch", "3", "--rounds", "1",
                                  "--repeats", "1")
    assert result["ours_backend"] == "dygraph" and result["batch"] == 3
    assert "| b3 (" in capsys.readouterr().out  # ms per image beside the per-call figures


def test_vs_authors_judges_the_median_of_runs(monkeypatch, capsys):
    """--runs R repeats the measurement; --max-ratio judges the median run and needs 3 or more."""
    with pytest.raises(SystemExit, match="--max-ratio judges the median of at least 3 runs"):
        vs_authors.main(["--model", "MixFormer_B0", "--authors-build", "m:f", "--max-ratio", "0.8"])
    ratios = iter([0.9, 0.5, 0.7])

    def fake_run(args):
        r = next(ratios)
        return vs_authors._summary(100.0, 100.0 * r, 90.0, 90.0 * r, peak_rss_mb={"authors": 1.0, "ours": 2.0})
    monkeypatch.setattr(vs_authors, "_one_run", fake_run)
    base = ["--model", "MixFormer_B0", "--authors-build", "m:f", "--ours", "dygraph", "--runs", "3"]
    result = vs_authors.main(base + ["--max-ratio", "0.7"])
    assert result["ratio"] == pytest.approx(0.7) and [r["ratio"] for r in result["runs"]] == [0.9, 0.5, 0.7]
    assert "3 runs, ratios of medians: 0.90, 0.50, 0.70; median 0.70" in capsys.readouterr().out
    ratios = iter([0.9, 0.5, 0.7])
    with pytest.raises(SystemExit) as missed:
        vs_authors.main(base + ["--max-ratio", "0.6"])
    assert missed.value.code == 1


def test_vs_authors_reuses_an_export_in_model_dir(tmp_path, capsys):
    args = vs_authors.parse_args(["--model", "MixFormer_B0", "--authors-build", "m:f", "--image-size", "64",
                                  "--model-dir", str(tmp_path)])
    vs_authors.prepare_ours(args)
    files = {f: os.path.getmtime(tmp_path / f) for f in os.listdir(tmp_path)}
    assert vs_authors.EXPECTED in files and any(f.startswith("inference.") for f in files)
    capsys.readouterr()
    vs_authors.prepare_ours(args)
    assert "reusing the export in" in capsys.readouterr().out
    assert {f: os.path.getmtime(tmp_path / f) for f in os.listdir(tmp_path)} == files


def test_vs_authors_option_checks():
    args = vs_authors.parse_args(["--model", "TransXNet_T", "--authors-build", "m:f", "--trace"])
    assert args.authors_runtime == "trace" and args.batch == 1
    assert vs_authors.parse_args(["--model", "X", "--mode", "train"]).batch == 8
    for bad, message in ((["--trace", "--authors-framework", "paddle"], "PyTorch inference only"),
                         (["--authors-runtime", "onnxruntime", "--mode", "train"], "PyTorch inference only"),
                         (["--mode", "train", "--ours", "onnxruntime"], "is for inference")):
        with pytest.raises(SystemExit, match=message):
            vs_authors.main(["--model", "MixFormer_B0", "--authors-build", "m:f"] + bad)


def _forget_modules(monkeypatch):
    """Import stand-ins for this test only: sys.path and sys.modules come back afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))


def test_authors_stand_ins_build_the_authors_blocks(monkeypatch):
    """The mmcv/timm stand-ins give the modules and names the authors' TransXNet expects (torch
    is not installed by install.sh: checked where it is)."""
    torch = pytest.importorskip("torch", reason="torch is not part of install.sh (the authors' side only)")
    _forget_modules(monkeypatch)
    sys.path.append(vs_authors.SHIMS)
    from mmcv.cnn.bricks import ConvModule, build_norm_layer
    from timm.models.layers import DropPath, to_2tuple
    block = ConvModule(4, 8, 3, padding=1, norm_cfg=dict(type="BN2d"), act_cfg=dict(type="GELU"))
    assert [name for name, _ in block.named_children()] == ["conv", "bn", "activate"]
    assert block.conv.bias is None and build_norm_layer(dict(type="GN", num_groups=1), 8)[0] == "gn"
    assert block(torch.zeros(1, 4, 5, 5)).shape == (1, 8, 5, 5) and to_2tuple(3) == (3, 3)
    assert DropPath(0.5).eval()(torch.ones(2, 3)).sum() == 6


def test_mixformer_stand_ins_import_beside_the_official_file(tmp_path, monkeypatch):
    """The official MixFormer imports `.vision_transformer` and `.swin_transformer`: with the file at
    its PaddleClas path (no __init__ files) the stand-ins are its siblings."""
    _forget_modules(monkeypatch)
    zoo = tmp_path / "ppcls" / "arch" / "backbone" / "model_zoo"
    zoo.mkdir(parents=True)
    (zoo / "tiny_official.py").write_text(
        "from .vision_transformer import trunc_normal_, zeros_, ones_, to_2tuple, DropPath, Identity\n"
        "from .swin_transformer import Mlp, window_partition, window_reverse\n"
        "from ppcls.utils.save_load import load_dygraph_pretrain, load_dygraph_pretrain_from_url\n"
        "def build():\n"
        "    return Mlp(4, 8)\n")
    args = vs_authors.parse_args(["--model", "MixFormer_B0", "--authors-framework", "paddle", "--authors-path",
                                  str(tmp_path), "--authors-build", "ppcls.arch.backbone.model_zoo.tiny_official:build"])
    import paddle
    mlp = vs_authors.build_authors_model(args)
    assert mlp(paddle.ones([2, 4])).shape == [2, 4]
    from ppcls.arch.backbone.model_zoo.swin_transformer import window_partition, window_reverse
    x = paddle.randn([2, 14, 7, 3])
    np.testing.assert_array_equal(window_reverse(window_partition(x, 7), 7, 14, 7, 3).numpy(), x.numpy())


def test_benchmark_prints_ms_per_image_writes_only_when_asked_and_sets_the_authors_beside(tmp_path, capsys):
    """tools/benchmark.py: ms/img beside img/s, --warmup before both batch sizes, no file without
    --write, and every backend beside the authors' figures from vs_authors.py --json."""
    from ppvision_hybrid import benchmark
    report = tmp_path / "b.md"
    authors = tmp_path / "authors_b1.json"
    authors.write_text(json.dumps(dict(model="MixFormer_B0", batch=1, threads=1, mode="infer", authors_ms=2.0,
                                       authors="paddle (stand_in:build)")))
    calls = []
    real_time_calls = benchmark.time_calls
    benchmark.time_calls = lambda fn, warmup, repeats: calls.append(warmup) or real_time_calls(fn, warmup, repeats)
    try:
        code = benchmark.main(["--models", "MixFormer_B0", "--image_size", "64", "--backends", "dygraph",
                               "--warmup", "1", "--repeats", "1", "--repeats_batch", "1", "--batch", "2",
                               "--output", str(report), "--authors_json", str(authors)])
    finally:
        benchmark.time_calls = real_time_calls
    out = capsys.readouterr().out
    assert code == 0 and not report.exists() and calls == [1, 1]
    assert "dygraph b2 img/s (ms/img)" in out and "ms/img)" in out
    assert "MixFormer_B0 against the authors' code" in out
    row = [line for line in out.splitlines() if line.startswith("| dygraph |")][0]
    ours_ms = float(row.split("|")[2])
    assert float(row.split("|")[3]) == pytest.approx(ours_ms / 2.0, rel=0.01)  # ratio to the authors' 2.0 ms


def test_profile_ops_lists_the_ops_of_a_training_step(capsys):
    import profile_ops
    table = profile_ops.main(["--model", "MixFormer_B0", "--mode", "train", "--batch", "2", "--image-size", "64",
                              "--threads", "1", "--warmup", "0", "--steps", "1", "--top", "5"])
    out = capsys.readouterr().out
    names = [name for name, _, _ in table]
    assert any(name.endswith("GradNode") for name in names) and any("matmul" in name for name in names)
    assert "paddle MixFormer_B0 train 2x3x64x64" in out and out.count("\n| ") == 6  # header + 5 ops


def test_fast_swap_projection_keeps_the_model_function():
    """profile_ops.FastSwap (the phase-1 projection) swaps a model's depthwise convs and GELUs for
    the fast kernels and back, without changing its output."""
    import paddle
    import profile_ops
    import ppvision_hybrid
    model = ppvision_hybrid.create_model("TransXNet_T")
    model.eval()
    x = paddle.randn([1, 3, 64, 64])
    swap = profile_ops.FastSwap(model)
    assert len(swap.convs) > 50 and len(swap.gelus) > 20
    with paddle.no_grad():
        standard = model(x).numpy()
        swap.set(True)
        fast = model(x).numpy()
        swap.set(False)
    assert type(swap.convs[0]) is paddle.nn.Conv2D and swap.module.F is paddle.nn.functional
    np.testing.assert_allclose(fast, standard, rtol=0, atol=1e-4 * float(np.abs(standard).max()))


def test_op_microbench_times_paddle_and_the_fast_forms(tmp_path, capsys):
    import op_microbench
    table = op_microbench.main(["--rounds", "1", "--warmup", "0", "--repeats", "1", "--threads", "1",
                                "--ops", "gelu", "roll", "--json", str(tmp_path / "ops.json")])
    assert set(table) == {"gelu", "roll"}
    assert table["gelu"]["paddle_fast"]["fwd_bwd_ms"] > 0 and "paddle_fast" not in table["roll"]
    assert table["roll"]["paddle"]["fwd_ms"] > 0
    out = capsys.readouterr().out
    assert "| gelu |" in out and "gelu: layers.gelu (C++ kernel)" in out
    assert json.loads((tmp_path / "ops.json").read_text())["ops"]["gelu"]["paddle"]["rounds"]


def test_benchmark_times_the_reparameterized_dygraph_and_writes_json(tmp_path, capsys):
    """``dygraph_reparam`` runs the model after re_parameterize() (a copy: ``dygraph`` keeps the
    training form), checked against dygraph like every backend; --json holds every figure."""
    from ppvision_hybrid import benchmark
    out_file = tmp_path / "rows.json"
    code = benchmark.main(["--models", "TransXNet_T", "--image_size", "64", "--backends", "dygraph,dygraph_reparam",
                           "--warmup", "0", "--repeats", "1", "--repeats_batch", "1", "--batch", "2",
                           "--threads", "1", "--json", str(out_file)])
    assert code == 0 and "WRONG OUTPUT" not in capsys.readouterr().out
    saved = json.loads(out_file.read_text())
    row = saved["rows"][0]
    assert saved["batch"] == 2 and row["model"] == "TransXNet_T"
    for backend in ("dygraph", "dygraph_reparam"):
        latency, throughput = row[backend]
        assert latency > 0 and throughput > 0


def test_vs_authors_image_size_takes_a_side_or_height_by_width():
    assert vs_authors.image_hw("224") == (224, 224) and vs_authors.image_hw("800x1333") == (800, 1333)
    assert vs_authors.image_hw("800x") is None and vs_authors.image_hw("big") is None
    with pytest.raises(SystemExit):
        vs_authors.parse_args(["--model", "TransXNet_T", "--image-size", "800by1333"])


def test_onnx_runtime_threads_are_started_from_an_unbound_thread():
    """Paddle's OpenMP binds the benchmark's main thread to one core (KMP_AFFINITY); ONNX Runtime's
    session is created with that binding lifted (its threads inherit it), then the binding is back."""
    import threading
    from ppvision_hybrid.benchmark import _unpinned
    seen = {}

    def bound_thread():
        os.sched_setaffinity(0, {0})
        seen["inside"] = _unpinned(lambda: os.sched_getaffinity(0))
        seen["after"] = os.sched_getaffinity(0)
    worker = threading.Thread(target=bound_thread)
    worker.start()
    worker.join()
    assert seen["inside"] == set(range(os.cpu_count())) and seen["after"] == {0}
