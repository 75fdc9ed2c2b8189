"""benchmarks/vs_authors.py runs end to end (a stand-in for the authors' code, tiny input)."""
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import vs_authors  # noqa: E402


def test_vs_authors_alternates_processes_and_reports_a_ratio(tmp_path, capsys):
    (tmp_path / "stand_in.py").write_text(
        "import paddle\n"
        "def build(width=8):\n"
        "    return paddle.nn.Sequential(paddle.nn.Conv2D(3, width, 3), paddle.nn.ReLU())\n")
    result = vs_authors.main([
        "--model", "MixFormer_B0", "--authors-framework", "paddle", "--authors-path", str(tmp_path),
        "--authors-build", "stand_in:build", "--authors-kwargs", '{"width": 4}', "--image-size", "64",
        "--rounds", "2", "--warmup", "0", "--repeats", "1"])
    assert len(result["rounds"]["authors"]) == len(result["rounds"]["ours"]) == 2
    assert result["ratio"] == pytest.approx(result["ours_ms"] / result["authors_ms"])
    assert "| MixFormer_B0 | paddle (stand_in:build) |" in capsys.readouterr().out


def test_vs_authors_needs_the_authors_model():
    with pytest.raises(SystemExit, match="--authors-build"):
        vs_authors.main(["--model", "MixFormer_B0"])
