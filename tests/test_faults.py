"""Faults during writes: a full disk (ENOSPC) and ``kill -9`` during export, weight conversion and
checkpointing. After each fault the old files are intact, no temporary survives the retry, and
the retry (a resume for training) succeeds with nothing lost: a resumed training run ends
bit-identical to an uninterrupted one.

ENOSPC comes two ways: injected writer failures (a write that stops half-way with
``OSError(ENOSPC)``, or Paddle's C++ writer that truncates silently as it does on a full disk)
always; and real kernel write failures: a full 64 MB tmpfs in a user+mount namespace
(``unshare -rm``) where the machine allows one, a file-size limit (RLIMIT_FSIZE) otherwise.
kill -9 lands at seeded points: ``PPVH_FAULT_KILL_AT=N[:MS]`` makes the child SIGKILL itself at
the N-th write step of :mod:`ppvision_hybrid.io_atomic` (or MS milliseconds after it, inside the
write that follows). CI runs 3 kill points of each kind; ``PPVH_FULL_TESTS=1`` runs 10 + 10.
"""
import errno
import glob
import hashlib
import os
import pickle
import random
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import paddle
import pytest

import ppvision_hybrid as pvh
from ppvision_hybrid import io_atomic
from ppvision_hybrid.convert import convert
from ppvision_hybrid.engine import Engine, get_config
from ppvision_hybrid.engine import checkpoint as ck
from ppvision_hybrid.engine.checkpoint import load_resume_states, save_checkpoint
from ppvision_hybrid.export import ExportError, export_inference_model
from ppvision_hybrid.weights import CheckpointError
from test_engine import DEMO, _overrides, tiny_imagenet  # noqa: F401 (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL = os.environ.get("PPVH_FULL_TESTS", "0") == "1"
KILLS = 10 if FULL else 3


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _tree(folder):
    """{relative path: sha256} of every file under ``folder``."""
    return {os.path.relpath(os.path.join(r, f), folder): _sha(os.path.join(r, f))
            for r, _, files in os.walk(folder) for f in files}


def _temporaries(folder):
    return sorted(p for p in glob.glob(os.path.join(str(folder), "**", "*"), recursive=True) +
                  glob.glob(os.path.join(str(folder), "**", ".*"), recursive=True)
                  if ".tmp" in os.path.basename(p) or ".old" in os.path.basename(p))


def _enospc_writer(real_save, fail_on):
    """A ``paddle.save`` that, on its ``fail_on``-th call, writes half the file and then fails
    the way a full disk does."""
    calls = {"n": 0}

    def save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] != fail_on:
            return real_save(obj, path, *args, **kwargs)
        real_save(obj, path, *args, **kwargs)
        with open(path, "rb+") as f:
            f.truncate(max(os.path.getsize(path) // 2, 1))
        raise OSError(errno.ENOSPC, "No space left on device", path)
    return save


def _tiny_model(seed, class_num=3):
    """A small classifier: the export tests are about the writes, and tracing a backbone would
    cost ~10 s per export here."""
    paddle.seed(seed)
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 16, 3), paddle.nn.GELU(), paddle.nn.AdaptiveAvgPool2D(1),
                                paddle.nn.Flatten(), paddle.nn.Linear(16, class_num))


def _export(model, folder):
    return export_inference_model(model, str(folder), (3, 32, 32), with_softmax=True,
                                  infer_config={"transforms": [], "model_name": "MixFormer_B0"})


# ---- io_atomic ---------------------------------------------------------------------------------
def test_atomic_file_keeps_the_old_file_on_enospc_and_on_exceptions(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old")
    for failure in (OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()):
        with pytest.raises(type(failure)):
            with io_atomic.atomic_file(str(target)) as tmp, open(tmp, "w") as f:
                f.write("new, half")
                raise failure
        assert target.read_text() == "old"
        assert os.listdir(tmp_path) == ["record.json"]
    with io_atomic.atomic_file(str(target)) as tmp, open(tmp, "w") as f:
        f.write("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["record.json"]


def test_atomic_directory_keeps_other_files_and_undoes_a_half_done_swap(tmp_path, monkeypatch):
    target = tmp_path / "export"
    target.mkdir()
    (target / "inference.pdmodel").write_text("old program")
    (target / "notes.txt").write_text("user file")
    (target / "sub").mkdir()
    (target / "sub" / "x").write_text("kept")
    with io_atomic.atomic_directory(str(target), replaces=lambda e: e.startswith("inference.")) as tmp:
        open(os.path.join(tmp, "inference.json"), "w").write("new program")
    assert _tree(target) == {"inference.json": _sha(target / "inference.json"),
                             "notes.txt": _sha(target / "notes.txt"), os.path.join("sub", "x"): _sha(target / "sub" / "x")}
    assert (target / "notes.txt").read_text() == "user file" and _temporaries(tmp_path) == []
    before = _tree(target)
    # the two-rename swap (platforms without renameat2), stopped between its renames
    monkeypatch.setattr(io_atomic, "_use_exchange", False)
    real_rename = os.rename

    def stop_at_second_rename(src, dst, calls=[]):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        return real_rename(src, dst)
    monkeypatch.setattr(io_atomic.os, "rename", stop_at_second_rename)
    with pytest.raises(KeyboardInterrupt):
        with io_atomic.atomic_directory(str(target)) as tmp:
            open(os.path.join(tmp, "inference.json"), "w").write("newer program")
    monkeypatch.setattr(io_atomic.os, "rename", real_rename)
    assert not target.exists()  # the moment a kill would leave behind ...
    io_atomic.recover_directory(str(target))  # ... undone by the next write to the same target
    assert _tree(target) == before and _temporaries(tmp_path) == []


def test_atomic_directory_into_the_working_directory_replaces_file_by_file(tmp_path, monkeypatch):
    """The working directory cannot be swapped away from under the process: each file of the
    set is replaced atomically instead, and the folder stays the same folder."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "inference.json").write_text("old")
    (work / "keep.txt").write_text("keep")
    monkeypatch.chdir(work)
    inode = os.stat(work).st_ino
    with io_atomic.atomic_directory(".") as tmp:
        open(os.path.join(tmp, "inference.json"), "w").write("new")
    assert os.stat(work).st_ino == inode and os.getcwd() == str(work)
    assert (work / "inference.json").read_text() == "new" and (work / "keep.txt").read_text() == "keep"
    assert _temporaries(tmp_path) == []


# ---- ENOSPC: export, conversion, checkpoints ------------------------------------------------------
def test_enospc_during_export_keeps_the_old_export(tmp_path, monkeypatch):
    """Paddle's writer does not report a full disk (it leaves a truncated .pdiparams and returns):
    the export is read back before it replaces anything."""
    folder = tmp_path / "inference"
    _export(_tiny_model(0), folder)
    before = _tree(folder)
    real = paddle.jit.save

    def full_disk_save(layer, path, *args, **kwargs):
        real(layer, path, *args, **kwargs)
        with open(path + ".pdiparams", "rb+") as f:
            f.truncate(os.path.getsize(path + ".pdiparams") * 3 // 4)
    monkeypatch.setattr(paddle.jit, "save", full_disk_save)
    with pytest.raises(ExportError, match=r"(?s)written incompletely.*disk may be full.*as they were"):
        _export(_tiny_model(1), folder)
    assert _tree(folder) == before and _temporaries(tmp_path) == []

    def failing_yml(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(paddle.jit, "save", real)
    monkeypatch.setattr("ppvision_hybrid.inference_yml.write_inference_yml", failing_yml)
    with pytest.raises(OSError, match="No space left"):
        _export(_tiny_model(1), folder)
    assert _tree(folder) == before and _temporaries(tmp_path) == []


def test_enospc_during_a_segmentation_export_keeps_the_old_export(tmp_path, monkeypatch):
    """The PaddleSeg export (model, params, deploy.yaml) is swapped in as one set, like ours."""
    from ppvision_hybrid.adapters.pipeline import export_seg_model

    class TinySegmenter(paddle.nn.Layer):  # PaddleSeg's contract: forward returns a list of logits
        def __init__(self, seed):
            super().__init__()
            paddle.seed(seed)
            self.conv = paddle.nn.Conv2D(3, 2, 3, padding=1)

        def forward(self, x):
            return [self.conv(x)]

    folder = tmp_path / "seg_export"
    export_seg_model(TinySegmenter(0), str(folder))
    before = _tree(folder)
    real = paddle.jit.save

    def full_disk_save(layer, path, *args, **kwargs):
        real(layer, path, *args, **kwargs)
        with open(path + ".pdiparams", "rb+") as f:
            f.truncate(os.path.getsize(path + ".pdiparams") // 2)
    monkeypatch.setattr(paddle.jit, "save", full_disk_save)
    with pytest.raises(ExportError, match="written incompletely"):
        export_seg_model(TinySegmenter(1), str(folder))
    assert _tree(folder) == before and _temporaries(tmp_path) == []


def test_enospc_during_in_place_conversion_keeps_the_source(tmp_path, monkeypatch):
    src = str(tmp_path / "mf.pdparams")
    paddle.seed(0)  # conversion checks against the registered (default-size) variant
    paddle.save(pvh.create_model("MixFormer_B0", class_num=7).state_dict(), src)
    digest = _sha(src)
    monkeypatch.setattr(paddle, "save", _enospc_writer(paddle.save, fail_on=1))
    with pytest.raises(OSError, match="No space left"):
        convert("MixFormer_B0", src, src, verbose=False)
    assert _sha(src) == digest and sorted(os.listdir(tmp_path)) == ["mf.pdparams"]
    monkeypatch.undo()
    record = convert("MixFormer_B0", src, src, verbose=False)  # in place, now with room
    assert record["src_sha256"] == digest and record["class_num"] == 7
    assert sorted(os.listdir(tmp_path)) == ["mf.pdparams", "mf.pdparams.json"]


@pytest.mark.parametrize("fail_on", [1, 2, "copy"])
def test_enospc_during_checkpointing_keeps_the_old_checkpoint(tmp_path, monkeypatch, fail_on):
    layer = paddle.nn.Linear(64, 64)
    old = {k: paddle.full(v.shape, 1.0) for k, v in layer.state_dict().items()}
    new = {k: paddle.full(v.shape, 2.0) for k, v in layer.state_dict().items()}
    prefix = str(tmp_path / "latest")
    save_checkpoint(str(tmp_path / "epoch_1"), old, {"m": paddle.ones([64])}, {"epoch": 1})
    ck.copy_checkpoint(str(tmp_path / "epoch_1"), prefix)
    before = _tree(tmp_path)
    if fail_on == "copy":  # publishing epoch_2 as latest runs out of room
        save_checkpoint(str(tmp_path / "epoch_2"), new, {"m": paddle.ones([64])}, {"epoch": 2})
        before = _tree(tmp_path)
        real_copy = shutil.copyfile

        def full_disk_copy(src, dst, *a, **k):
            real_copy(src, dst, *a, **k)
            raise OSError(errno.ENOSPC, "No space left on device", dst)
        monkeypatch.setattr(ck.shutil, "copyfile", full_disk_copy)
        with pytest.raises(OSError, match="No space left"):
            ck.copy_checkpoint(str(tmp_path / "epoch_2"), prefix)
    else:  # the .pdparams (1) or .pdopt (2) of latest itself runs out of room
        monkeypatch.setattr(paddle, "save", _enospc_writer(paddle.save, fail_on))
        with pytest.raises(OSError, match="No space left"):
            save_checkpoint(prefix, new, {"m": paddle.ones([64])}, {"epoch": 2})
    monkeypatch.undo()
    assert _tree(tmp_path) == before and _temporaries(tmp_path) == []
    assert load_resume_states(prefix, layer)["epoch"] == 1
    np.testing.assert_array_equal(layer.weight.numpy(), np.ones([64, 64], np.float32))


def _unshare_available():
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_real_full_disk_for_export_conversion_and_checkpoint(tmp_path):
    """Real write failures from the kernel: the three writers on a tmpfs that holds the first
    version but not a second one beside it (ENOSPC). Where user namespaces cannot mount one, a
    file-size limit (RLIMIT_FSIZE, EFBIG) makes the same writes fail half-way instead."""
    mode = "tmpfs" if _unshare_available() else "fsize"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "full_disk.py"
    script.write_text(textwrap.dedent(f"""
        import sys, os, hashlib, errno
        sys.path.insert(0, {ROOT!r}); sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
        import numpy as np, paddle, ppvision_hybrid as pvh
        from test_faults import _export, _tiny_model, _tree, _temporaries
        from ppvision_hybrid.export import ExportError
        from ppvision_hybrid.convert import convert
        from ppvision_hybrid.engine.checkpoint import save_checkpoint, load_resume_states
        mnt = {str(mnt)!r}

        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)

        def fill(leave):  # leave room for `leave` bytes
            if sys.argv[1] == "fsize":
                resource.setrlimit(resource.RLIMIT_FSIZE, (leave, unlimited[1]))
                return
            st = os.statvfs(mnt)
            open(mnt + "/filler", "wb").write(b"0" * max(st.f_bavail * st.f_frsize - leave, 0))

        def tree():
            return {{k: v for k, v in _tree(mnt).items() if k != "filler"}}

        def attempt(what, write):
            before = tree()
            try:
                write()
                print(what, "no error")
            except (ExportError, OSError) as e:
                print(what, "refused:", type(e).__name__, errno.errorcode.get(getattr(e, "errno", None)))
            resource.setrlimit(resource.RLIMIT_FSIZE, unlimited)
            print(what, "intact:", tree() == before, "temporaries:", _temporaries(mnt))
            if os.path.exists(mnt + "/filler"):
                os.remove(mnt + "/filler")

        _export(_tiny_model(0), mnt + "/inference")
        fill(os.path.getsize(mnt + "/inference/inference.pdiparams") // 2)
        attempt("export", lambda: _export(_tiny_model(1), mnt + "/inference"))
        save_checkpoint(mnt + "/latest", {{"w": paddle.full([1 << 18], 1.0)}}, {{}}, {{"epoch": 1}})
        fill(1 << 19)
        attempt("checkpoint", lambda: save_checkpoint(mnt + "/latest", {{"w": paddle.full([1 << 18], 2.0)}}, {{}}, {{"epoch": 2}}))
        src = mnt + "/w.pdparams"
        paddle.save(pvh.create_model("MixFormer_B0", class_num=7).state_dict(), src)
        fill(os.path.getsize(src) // 2)
        attempt("conversion", lambda: convert("MixFormer_B0", src, src, verbose=False))
    """))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    if mode == "tmpfs":
        command = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64m none {mnt} && "
                   f"{sys.executable} {script} tmpfs"]
    else:
        command = [sys.executable, str(script), "fsize"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    code = "ENOSPC" if mode == "tmpfs" else "EFBIG"
    assert "export refused: ExportError" in out, out
    assert f"checkpoint refused: OSError {code}" in out and f"conversion refused: OSError {code}" in out, out
    for what in ("export", "checkpoint", "conversion"):
        assert f"{what} intact: True temporaries: []" in out, out


# ---- kill -9 ---------------------------------------------------------------------------------------
def _points(count, total, seed):
    rng = random.Random(seed)
    return sorted(rng.sample(range(1, total + 1), min(count, total)))


TRAIN_EXTRA = ["DataLoader.Train.sampler.batch_size=4", "Optimizer.lr.warmup_epoch=0"]


def _train_config(data, out, extra=()):
    return get_config(DEMO, _overrides(data, out, 2) + TRAIN_EXTRA + list(extra))


def _resume_target(ckpt_dir):
    """What a user does after a crash: resume from latest; if latest is missing the error names
    the epoch_N to resume from; with no checkpoint at all, start again."""
    latest = os.path.join(ckpt_dir, "latest")
    if not os.path.isdir(ckpt_dir) or not glob.glob(os.path.join(ckpt_dir, "*.pdstates")):
        return None
    if os.path.isfile(latest + ".pdstates"):
        return latest
    with pytest.raises(CheckpointError, match=r"resume with -o Global.checkpoints=\S*epoch_\d+") as e:
        load_resume_states(latest, paddle.nn.Linear(1, 1))
    return str(e.value).rsplit("Global.checkpoints=", 1)[1]


def _final_params(ckpt_dir):
    return {k: np.asarray(v) for k, v in paddle.load(os.path.join(ckpt_dir, "latest.pdparams")).items()}


def test_kill_9_during_training_then_resume_is_bit_identical(tiny_imagenet, tmp_path):  # noqa: F811
    # In-process run: counts the write steps (fault points) a 2-epoch run passes.
    seen = io_atomic.fault_points_seen()
    counting = Engine(_train_config(tiny_imagenet, tmp_path / "counting"), mode="train")
    counting.train()
    total = io_atomic.fault_points_seen() - seen
    script = tmp_path / "train_child.py"
    script.write_text(textwrap.dedent(f"""
        import sys; sys.path.insert(0, {ROOT!r})
        from ppvision_hybrid.engine import Engine, get_config
        Engine(get_config({DEMO!r}, sys.argv[1:]), mode="train").train()
        print("finished without being killed")
    """))

    def train_child(out, extra=(), kill_at=None):
        # every run in a fresh process, so earlier tests in this worker cannot change the numbers
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
        env.pop("PPVH_FAULT_KILL_AT", None)
        if kill_at is not None:
            env["PPVH_FAULT_KILL_AT"] = str(kill_at)
        return subprocess.run([sys.executable, str(script)] + _overrides(tiny_imagenet, out, 2) + TRAIN_EXTRA
                              + list(extra), env=env, capture_output=True, text=True, timeout=300)

    reference = train_child(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = _final_params(str(tmp_path / "reference" / "MixFormer_B0"))
    with open(tmp_path / "reference" / "MixFormer_B0" / "best_model.pdstates", "rb") as f:
        best_epoch = pickle.load(f)["epoch"]
    for point in _points(KILLS, total, seed=23):
        out = tmp_path / f"killed_at_{point}"
        proc = train_child(out, kill_at=point)
        assert proc.returncode == -9, f"point {point}: {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        ckpt_dir = str(out / "MixFormer_B0")
        target = _resume_target(ckpt_dir)
        extra = [f"Global.checkpoints={target}"] if target else []
        print(f"kill point {point}/{total}: resume from {target and os.path.basename(target)}")
        retry = train_child(out, extra)
        assert retry.returncode == 0, f"point {point}: {retry.stderr[-2000:]}"
        got = _final_params(ckpt_dir)
        assert sorted(got) == sorted(expected)
        for k in expected:
            np.testing.assert_array_equal(got[k], expected[k], err_msg=f"kill point {point}: {k}")
        assert _temporaries(ckpt_dir) == [], f"kill point {point}"
        assert load_resume_states(os.path.join(ckpt_dir, "latest"), counting.model)["epoch"] == 2
        with open(os.path.join(ckpt_dir, "best_model.pdstates"), "rb") as f:
            assert pickle.load(f)["epoch"] == best_epoch, f"kill point {point}"


def test_kill_9_during_export_keeps_one_whole_export(tmp_path):
    folder = tmp_path / "inference"
    _export(_tiny_model(0), folder)
    old = _tree(folder)
    new_model = _tiny_model(1)
    probe = tmp_path / "probe"
    _export(new_model, probe)
    seen = io_atomic.fault_points_seen()
    _export(new_model, probe)  # counted over an existing export, as in the children
    total = io_atomic.fault_points_seen() - seen
    new_params = _sha(probe / "inference.pdiparams")
    script = tmp_path / "export_child.py"
    script.write_text(textwrap.dedent(f"""
        import sys; sys.path.insert(0, {ROOT!r}); sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
        from test_faults import _export, _tiny_model
        _export(_tiny_model(1), sys.argv[1])
    """))
    rng = random.Random(2023)
    # a step of the write, or a random delay after the first (landing inside jit.save, the read-back, ...)
    points = [f"{rng.randint(1, total)}" if i % 2 else f"1:{rng.randint(0, 300)}" for i in range(KILLS)]
    killed = 0
    for point in points:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, PPVH_FAULT_KILL_AT=point)
        proc = subprocess.run([sys.executable, str(script), str(folder)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode in (0, -9), proc.stderr[-3000:]
        killed += proc.returncode == -9
        print(f"export kill point {point} (of {total} steps): exit {proc.returncode}")
        io_atomic.recover_directory(str(folder))  # what the next export does first
        now = _tree(folder)
        assert sorted(now) == ["inference.json", "inference.pdiparams", "inference.yml"], (point, now)
        assert now == old or now["inference.pdiparams"] == new_params, point
        paddle.jit.load(str(folder / "inference"))  # whole, loadable
        _export(new_model, folder)  # the retry
        assert _sha(folder / "inference.pdiparams") == new_params and _temporaries(tmp_path) == [], point
        _export(_tiny_model(0), folder)  # back to the old export for the next kill
        old = _tree(folder)
    assert killed >= len(points) // 2
