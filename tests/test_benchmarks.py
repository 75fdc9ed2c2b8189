"""benchmarks/vs_authors.py runs end to end (a stand-in for the authors' code, tiny input)."""
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import vs_authors  # noqa: E402


STAND_IN = ("import paddle\n"
            "def build(width=8):\n"
            "    return paddle.nn.Sequential(paddle.nn.Conv2D(3, width, 3), paddle.nn.ReLU())\n"
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
    result = run_against_stand_in(tmp_path, "build", "--interleave", "3", "--gap-ms", "1", "--max-ratio", "1e6")
    calls = result["calls"]
    assert len(calls["authors"]) == len(calls["ours"]) == 3 and min(calls["authors"] + calls["ours"]) > 0
    ratios = sorted(o / a for o, a in zip(calls["ours"], calls["authors"]))
    assert result["pair_ratio"] == pytest.approx(ratios[1])
    assert result["ratio"] == pytest.approx(sorted(calls["ours"])[1] / sorted(calls["authors"])[1])
    assert "interleaved, 3 calls per side: median of per-pair ratios" in capsys.readouterr().out


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
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import benchmark
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
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import benchmark
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
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import benchmark
    if benchmark_has_gpu():
        pytest.skip("this machine has a GPU build of Paddle")
    code = benchmark.main(["--models", "MixFormer_B0", "--image_size", "64", "--backends", "dygraph", "--gpu",
                           "--warmup", "0", "--repeats", "1", "--repeats_batch", "1", "--batch", "2",
                           "--output", str(tmp_path / "b.md")])
    out = capsys.readouterr().out
    assert code == 0
    assert "MixFormer_B0 dygraph_gpu: unavailable" in out and "MixFormer_B0 paddle_gpu: unavailable" in out
    row = [line for line in (tmp_path / "b.md").read_text().splitlines() if line.startswith("| MixFormer_B0")][0]
    assert row.count("n/a") == 4  # latency and throughput of the two GPU backends
    assert "benchmark-gpu:begin" in (tmp_path / "b.md").read_text()


def benchmark_has_gpu():
    import paddle
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
