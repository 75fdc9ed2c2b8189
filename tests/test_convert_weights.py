"""ppvh-convert-weights (ppvision_hybrid.convert.main; tools/convert_weights.py wraps it) end to end, and the torch-free .pth reader it relies on.

Official-layout TransXNet-T checkpoints are written without torch (ppvision_hybrid.pth.save_pth
writes PyTorch's zip layout; torch.load reads it back, checked when the reader was written);
tiny files made by torch itself (zip and legacy formats) live in tests/data.
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid.pth import PthError, load_pth, save_pth
from conftest import DATA, official_keys, official_random_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from ppvision_hybrid import convert as cw  # noqa: E402


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def official_t():
    """The seed-2024 official-layout weights whose outputs were recorded from the authors' code."""
    return official_random_state(official_keys("t"), seed=2024)


@pytest.fixture(scope="module")
def official_pth(official_t, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ckpt") / "transx-t.pth.tar")
    save_pth({"state_dict": official_t, "epoch": 300, "arch": "transxnet_t"}, path)
    return path


# ---- the .pth reader --------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reads_files_written_by_torch(fmt):
    obj = load_pth(os.path.join(DATA, f"transxnet_tiny_torch_{fmt}.pth"))
    expected = np.load(os.path.join(DATA, "transxnet_tiny_torch_expected.npz"))
    assert obj["epoch"] == 7 and obj["arch"] == "tiny"
    assert obj["args"].qualname == "argparse.Namespace"  # inert stand-in, nothing constructed
    sd = obj["state_dict"]
    assert sorted(sd) == sorted(expected.files)
    for k in expected.files:  # strided, sliced, shared-storage, fp16, bf16, bool, int64, 0-d
        assert sd[k].dtype == expected[k].dtype, k
        np.testing.assert_array_equal(sd[k], expected[k], err_msg=k)


def test_reader_never_runs_named_callables(tmp_path):
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    obj = load_pth(str(path))
    assert not (tmp_path / "pwned").exists()
    assert "system" in type(obj["x"]).qualname


def test_truncated_or_foreign_files_are_clear_errors(tmp_path, official_pth):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(open(official_pth, "rb").read()[:100_000])
    with pytest.raises(PthError, match="cut.pth"):
        load_pth(str(cut))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(PthError, match="junk.pth"):
        load_pth(str(junk))


# ---- the CLI ----------------------------------------------------------------------------
def test_cli_converts_official_checkpoint_and_reproduces_the_authors_outputs(official_pth, tmp_path, capsys):
    dst = str(tmp_path / "TransXNet_T.pdparams")
    assert cw.main(["--model", "TransXNet_T", "--src", official_pth, "--dst", dst]) == 0
    record = json.loads(open(dst + ".json").read())
    assert record["src_sha256"] == _sha(official_pth) and record["dst_sha256"] == _sha(dst)
    assert record["class_num"] == 1000 and record["features_only"] is False
    assert record["source_keys"] == 1508 and record["dropped_keys"] == 160
    assert '"dst_sha256"' in capsys.readouterr().out
    model = pvh.create_model("TransXNet_T", pretrained=dst)
    model.eval()
    x = np.random.default_rng(8).standard_normal((2, 3, 64, 80)).astype("float32")
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
    ref = np.load(os.path.join(DATA, "transxnet_t_official_outputs.npz"))["logits_small"]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_cli_raw_dense_checkpoint_with_model_wrapper_and_other_class_count(tmp_path):
    dense = official_random_state(official_keys("t", dense=True), seed=5)
    src = str(tmp_path / "dense.pth")
    save_pth(dense, src)  # raw state dict, fork_feat layout
    rec = cw.convert("TransXNet_T", src, str(tmp_path / "dense.pdparams"), verbose=False)
    assert rec["features_only"] is True and rec["class_num"] is None
    state = official_random_state(official_keys("t"), seed=6)
    state["classifier.2.weight"] = state["classifier.2.weight"][:10]
    state["classifier.2.bias"] = state["classifier.2.bias"][:10]
    src = str(tmp_path / "ten.pth")
    save_pth({"model": state}, src)
    rec = cw.convert("TransXNet_T", src, str(tmp_path / "ten.pdparams"), verbose=False)
    assert rec["class_num"] == 10


def test_cli_rejects_unknown_wrapper(tmp_path, capsys):
    src = str(tmp_path / "wrapped.pth")
    save_pth({"weights": {"a": np.zeros(2, np.float32)}, "epoch": 1}, src)
    assert cw.main(["--model", "TransXNet_T", "--src", src, "--dst", str(tmp_path / "o.pdparams")]) == 1
    err = capsys.readouterr().err
    assert "unknown checkpoint wrapper" in err and "'weights'" in err
    assert not os.path.exists(tmp_path / "o.pdparams")


@pytest.mark.parametrize("damage, message", [
    ("missing", r"missing keys \(1\).*stages\.2\.2\.mlp\.fc1\.0\.weight"),
    ("shape", r"shape mismatches \(1\).*stages\.1\.1\.pos_embed\.weight"),
    ("extra", r"unmapped checkpoint keys.*network\.9\.0\.foo"),
])
def test_cli_names_the_offending_keys(official_t, tmp_path, capsys, damage, message):
    state = dict(official_t)
    if damage == "missing":
        del state["network.4.2.mlp.fc1.0.weight"]
    elif damage == "shape":
        state["network.2.1.pos_embed.weight"] = np.zeros((96, 1, 5, 5), np.float32)
    else:
        state["network.9.0.foo.weight"] = np.zeros(3, np.float32)
    src = str(tmp_path / "bad.pth")
    save_pth({"state_dict": state}, src)
    assert cw.main(["--model", "TransXNet_T", "--src", src, "--dst", str(tmp_path / "o.pdparams")]) == 1
    import re
    assert re.search(message, capsys.readouterr().err)
    assert not os.path.exists(tmp_path / "o.pdparams")


def test_cli_validates_and_resaves_pdparams_of_a_family_without_converter(tmp_path):
    name = "MixFormer_B0"
    if name not in pvh.list_models():
        pytest.skip("MixFormer not registered")
    model = pvh.create_model(name, class_num=7)
    src = str(tmp_path / "mf.pdparams")
    paddle.save(model.state_dict(), src)
    rec = cw.convert(name, src, str(tmp_path / "mf_out.pdparams"), verbose=False)
    assert rec["class_num"] == 7 and rec["how"].startswith("validated")
    state = paddle.load(src)
    state.pop(next(iter(state)))
    paddle.save(state, src)
    with pytest.raises(cw.ConversionError, match="missing keys"):
        cw.convert(name, src, str(tmp_path / "mf_out2.pdparams"), verbose=False)


def test_cli_entry_point_runs_as_a_script(tmp_path):
    src = str(tmp_path / "tiny.pth")
    save_pth({"something": {"x": np.zeros(1, np.float32)}}, src)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_weights.py"), "--model",
                           "TransXNet_T", "--src", src, "--dst", str(tmp_path / "o.pdparams")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 1 and "unknown checkpoint wrapper" in proc.stderr


def test_cli_converts_in_place(tmp_path):
    """``--src X --dst X`` (the README's validate + re-save): the source is read completely
    before the new file replaces it, and its digest is recorded as it was."""
    src = str(tmp_path / "mf.pdparams")
    paddle.save(pvh.create_model("MixFormer_B0", class_num=4).state_dict(), src)
    digest = _sha(src)
    assert cw.main(["--model", "MixFormer_B0", "--src", src, "--dst", src]) == 0
    record = json.loads(open(src + ".json").read())
    assert record["src_sha256"] == digest and record["dst_sha256"] == _sha(src)
    pvh.create_model("MixFormer_B0", class_num=4, pretrained=src)
    assert sorted(os.listdir(tmp_path)) == ["mf.pdparams", "mf.pdparams.json"]
