"""The engine end to end on a tiny generated ImageNet-layout folder: tools/train.py ->
tools/eval.py -> tools/infer.py -> tools/export_model.py (subprocesses, -o overrides), the
exported model in paddle.inference against dygraph, exact resume, atomic checkpoints (kill -9),
and the clear errors.

Model: MixFormer_B0 shrunk through factory kwargs (window 4, last_dim 32), 3 classes, 32x32
inputs, 12 train / 6 val images.
"""
import glob
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import paddle
import pytest

from ppvision_hybrid.engine import ConfigError, Engine, get_config
from ppvision_hybrid.engine.checkpoint import (load_resume_states, optimizer_state_to_structured,
                                               save_checkpoint)
from ppvision_hybrid.weights import CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "configs", "demo", "MixFormer_B0_digits.yaml")
B0 = os.path.join(ROOT, "configs", "MixFormer_B0.yaml")
NAMES = ["red", "green", "blue"]


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory):
    """3 classes of 32x32 images: a coloured square on noise; train/val lists and label map."""
    root = tmp_path_factory.mktemp("tiny_imagenet")
    rng = np.random.RandomState(0)
    for split, per_class in (("train", 4), ("val", 2)):
        lines = []
        for c in range(3):
            os.makedirs(root / split / NAMES[c], exist_ok=True)
            for i in range(per_class):
                img = rng.randint(0, 60, (32, 32, 3)).astype(np.uint8)
                y, x = rng.randint(0, 12, 2)
                img[y:y + 20, x:x + 20, 2 - c] = 230  # BGR on disk: class c lights channel c in RGB
                rel = f"{split}/{NAMES[c]}/{i}.png"
                cv2.imwrite(str(root / rel), img)
                lines.append(f"{rel} {c}\n")
        (root / f"{split}_list.txt").write_text("".join(lines))
    (root / "label_list.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(NAMES)))
    return root


def _overrides(data, out, epochs=2, extra=()):
    d = str(data)
    opts = [f"Global.epochs={epochs}", f"Global.output_dir={out}", "Global.print_batch_step=1",
            "Global.seed=0", "Arch.class_num=3", "Arch.last_dim=32",
            f"Global.save_inference_dir={out}/inference",
            "DataLoader.Train.sampler.batch_size=6", "DataLoader.Eval.sampler.batch_size=4"]
    for mode, lst in (("Train", "train_list.txt"), ("Eval", "val_list.txt")):
        opts += [f"DataLoader.{mode}.dataset.name=ImageNetDataset",
                 f"DataLoader.{mode}.dataset.image_root={d}",
                 f"DataLoader.{mode}.dataset.cls_label_path={d}/{lst}"]
    opts += [f"Infer.infer_imgs={d}/val", f"Infer.PostProcess.class_id_map_file={d}/label_list.txt"]
    return opts + list(extra)


# the paper's ImageNet recipe (RandAugment, random erasing, Mixup/CutMix, AMP request, ...)
# shrunk to 32x32 inputs and the tiny folder
B0_TINY = ["Global.device=cpu", "Global.image_shape=[3, 32, 32]", "Arch.window_size=4",
           "Optimizer.lr.warmup_epoch=1",
           "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32",
           "DataLoader.Train.dataset.transform_ops.3.TimmAutoAugment.img_size=32",
           "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.resize_short=36",
           "DataLoader.Eval.dataset.transform_ops.2.CropImage.size=32",
           "DataLoader.Train.loader.num_workers=0", "DataLoader.Eval.loader.num_workers=0",
           "Infer.transforms.1.ResizeImage.resize_short=36", "Infer.transforms.2.CropImage.size=32"]


def _run_tool(tool, args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool)] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{tool} failed:\n{out[-4000:]}"
    return out


def _o(opts):
    return [a for opt in opts for a in ("-o", opt)]


def test_train_eval_infer_export_pipeline(tiny_imagenet, tmp_path):
    """configs/MixFormer_B0.yaml itself, shrunk by -o overrides, through the four tools."""
    out = tmp_path / "output"
    opts = _overrides(tiny_imagenet, out, extra=B0_TINY + ["EMA.decay=0.9"])
    log = _run_tool("train.py", ["-c", B0] + _o(opts), tmp_path)
    assert "AMP (level O1) was requested but the device is CPU" in log
    # progress lines: epoch/iter, loss, lr, images/s, ETA; epoch summary; eval summary
    assert "[Train][Epoch 1/2][Iter: 0/2] lr:" in log and "ips:" in log and "eta:" in log
    assert "[Train][Epoch 2/2][Avg] loss:" in log
    assert "[Eval][Epoch 2][Avg]" in log and "top1:" in log and "top5:" in log
    assert "[Eval EMA][Epoch 2][Avg]" in log
    ckpt = out / "MixFormer_B0"
    for prefix in ("epoch_1", "epoch_2", "latest", "best_model"):
        for suffix in (".pdparams", ".pdopt", ".pdstates", ".pdema"):
            assert (ckpt / (prefix + suffix)).is_file(), prefix + suffix
    assert not glob.glob(str(ckpt / "*.tmp*"))
    with open(ckpt / "latest.pdstates", "rb") as f:
        assert pickle.load(f)["epoch"] == 2
    assert (ckpt / "train.log").read_text().count("[Train][Epoch 2/2][Avg]") == 1

    best = str(ckpt / "best_model")
    log = _run_tool("eval.py", ["-c", B0] + _o(opts + [f"Global.pretrained_model={best}"]), tmp_path)
    assert "[Eval][Epoch 0][Avg]" in log and "images: 6" in log

    log = _run_tool("infer.py", ["-c", B0] + _o(opts + [f"Global.pretrained_model={best}"]), tmp_path)
    preds = [eval(line) for line in log.splitlines() if line.startswith("{'class_ids'")]
    assert len(preds) == 6
    assert all(len(p["class_ids"]) == 3 and set(p["label_names"]) == set(NAMES) for p in preds)
    assert all(abs(sum(p["scores"]) - 1.0) < 1e-3 for p in preds)  # top-3 of 3 classes

    log = _run_tool("export_model.py", ["-c", B0] + _o(opts + [f"Global.pretrained_model={best}"]), tmp_path)
    inf_dir = out / "inference"
    assert (inf_dir / "inference.pdiparams").is_file()
    # inference.yml: PaddleClas's export_for_fd layout, names from class_id_map_file
    import yaml
    yml = yaml.safe_load((inf_dir / "inference.yml").read_text())
    assert yml["Global"]["model_name"] == "MixFormer_B0"
    assert yml["PostProcess"]["Topk"] == {"topk": 5, "label_list": NAMES}
    ops = [next(iter(op)) for op in yml["PreProcess"]["transform_ops"]]
    assert ops == ["ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage"]
    assert yml["PreProcess"]["transform_ops"][0]["ResizeImage"] == {"resize_short": 36, "interpolation": "BICUBIC"}
    assert yml["PreProcess"]["transform_ops"][2]["NormalizeImage"]["scale"] == pytest.approx(1 / 255)
    model_file = [str(inf_dir / f) for f in ("inference.json", "inference.pdmodel") if (inf_dir / f).is_file()][0]

    # the exported program (softmax included) equals dygraph with the same weights
    from paddle import inference
    cfg = inference.Config(model_file, str(inf_dir / "inference.pdiparams"))
    cfg.disable_gpu()
    cfg.disable_mkldnn()
    predictor = inference.create_predictor(cfg)
    x = np.random.RandomState(1).randn(3, 3, 32, 32).astype("float32")
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(x.shape)
    handle.copy_from_cpu(x)
    predictor.run()
    got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    config = get_config(B0, opts + [f"Global.pretrained_model={best}"])
    engine = Engine(config, mode="export")
    engine.model.eval()
    ref = paddle.nn.functional.softmax(engine.model(paddle.to_tensor(x)), axis=-1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def _train(data, out, epochs, extra=()):
    config = get_config(DEMO, _overrides(data, out, epochs, extra) + [
        "DataLoader.Train.sampler.batch_size=4", "Global.eval_during_train=False"])
    engine = Engine(config, mode="train")
    engine.train()
    return engine


def test_resume_gives_identical_weights(tiny_imagenet, tmp_path):
    """2 epochs straight == 1 epoch, resume from latest, 1 more (random crops included: the
    RNG states travel in .pdstates, the sampler order depends only on the epoch)."""
    straight = _train(tiny_imagenet, tmp_path / "a", 2)
    _train(tiny_imagenet, tmp_path / "b", 1)
    latest = str(tmp_path / "b" / "MixFormer_B0" / "latest")
    resumed = _train(tiny_imagenet, tmp_path / "b", 2, [f"Global.checkpoints={latest}"])
    assert resumed.start_epoch == 1 and resumed.global_step == straight.global_step == 6
    assert resumed.lr_scheduler.get_lr() == straight.lr_scheduler.get_lr()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    oa = optimizer_state_to_structured(straight.optimizer.state_dict(), straight.model)
    ob = optimizer_state_to_structured(resumed.optimizer.state_dict(), resumed.model)
    assert oa.keys() == ob.keys()
    moments = [k for k in oa if "moment1" in k]
    assert moments
    for k in moments:
        np.testing.assert_array_equal(oa[k].numpy(), ob[k].numpy(), err_msg=k)


def test_resume_errors_load_nothing(tiny_imagenet, tmp_path):
    engine = _train(tiny_imagenet, tmp_path / "c", 1)
    ckpt = tmp_path / "c" / "MixFormer_B0"
    before = {k: v.numpy().copy() for k, v in engine.model.state_dict().items()}
    # corrupt: truncated parameters
    (ckpt / "epoch_1.pdparams").write_bytes((ckpt / "epoch_1.pdparams").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="epoch_1.pdparams does not match the checksum"):
        load_resume_states(str(ckpt / "epoch_1"), engine.model, engine.optimizer)
    (ckpt / "garbage.pdparams").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable Paddle checkpoint"):
        Engine(get_config(DEMO, _overrides(tiny_imagenet, tmp_path / "c", 1) +
                          [f"Global.pretrained_model={ckpt / 'garbage'}"]), mode="eval")
    with pytest.raises(CheckpointError, match="missing"):
        load_resume_states(str(ckpt / "epoch_7"), engine.model, engine.optimizer)
    # another architecture: names missing / unexpected keys
    other = paddle.nn.Sequential(paddle.nn.Linear(4, 4))
    save_checkpoint(str(ckpt / "other"), other.state_dict(), {}, {"epoch": 1, "arch": "Other"})
    with pytest.raises(CheckpointError, match="(?s)missing keys.*patch_embed.*unexpected keys.*'0.weight'.*"
                                              "Arch.name='Other'"):
        load_resume_states(str(ckpt / "other"), engine.model, engine.optimizer, arch_name="MixFormer_B0")
    with pytest.raises(CheckpointError, match="missing keys"):
        Engine(get_config(DEMO, _overrides(tiny_imagenet, tmp_path / "c", 1) +
                          [f"Global.pretrained_model={ckpt / 'other'}"]), mode="eval")
    after = engine.model.state_dict()
    for k in before:  # nothing was loaded by any failed attempt
        np.testing.assert_array_equal(before[k], after[k].numpy())
    assert (ckpt / "latest.pdparams").is_file()


def test_interrupted_commit_never_corrupts(tmp_path, monkeypatch):
    """Fail the save at every rename: the checkpoint then loads as the old or the new set."""
    from ppvision_hybrid.engine import checkpoint as ck
    layer = paddle.nn.Linear(3, 3)

    def params(v):
        return {k: paddle.full(p.shape, float(v)) for k, p in layer.state_dict().items()}

    prefix = str(tmp_path / "latest")
    save_checkpoint(prefix, params(1), {"step": 1}, {"epoch": 1})
    real_replace = os.replace
    for fail_at in range(3):
        calls = {"n": 0}

        def flaky(src, dst, fail_at=fail_at):
            if calls["n"] == fail_at:
                raise KeyboardInterrupt("killed")
            calls["n"] += 1
            return real_replace(src, dst)
        monkeypatch.setattr(ck.os, "replace", flaky)
        with pytest.raises(KeyboardInterrupt):
            ck._commit([(t, f) for t, f in _write_tmps(ck, prefix, params(2), {"epoch": 2})])
        monkeypatch.setattr(ck.os, "replace", real_replace)
        states = load_resume_states(prefix, layer)
        expected = 2 if fail_at >= 1 else 1  # after the .pdstates rename the new set wins
        assert states["epoch"] == expected
        np.testing.assert_array_equal(layer.weight.numpy(), np.full([3, 3], expected, np.float32))
        save_checkpoint(prefix, params(1), {"step": 1}, {"epoch": 1})


def _write_tmps(ck, prefix, model_state, states):
    """The first half of save_checkpoint (temporaries + digests), for the commit test."""
    pending, hashes = [], {}
    for suffix, obj in ((".pdparams", model_state), (".pdopt", {"step": 2})):
        tmp = ck._tmp_name(prefix + suffix)
        paddle.save(obj, tmp)
        hashes[suffix] = ck._sha256(tmp)
        pending.append((tmp, prefix + suffix))
    tmp = ck._tmp_name(prefix + ".pdstates")
    with open(tmp, "wb") as f:
        pickle.dump(dict(states, files_sha256=hashes), f)
    pending.append((tmp, prefix + ".pdstates"))
    return pending


def test_kill_9_during_saves_leaves_a_loadable_latest(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(textwrap.dedent(f"""
        import sys; sys.path.insert(0, {ROOT!r})
        import paddle
        from ppvision_hybrid.engine.checkpoint import save_checkpoint
        i = 0
        while True:
            i += 1
            w = {{"w": paddle.full([256, 1024], float(i))}}
            save_checkpoint({str(tmp_path / 'latest')!r}, w, {{"m": paddle.full([256, 1024], float(i))}}, {{"epoch": i}})
            if i == 2:
                print("ready", flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.37)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    class Holder(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.w = self.create_parameter([256, 1024])
    holder = Holder()
    states = load_resume_states(str(tmp_path / "latest"), holder)
    assert states["epoch"] >= 2
    assert np.all(holder.w.numpy() == states["epoch"])


def test_missing_dataset_unknown_model_and_amp_on_cpu(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)ILSVRC2012.*prepare.*MixFormer_B0_digits"):
        Engine(get_config(B0, ["Global.device=cpu", "Arch.class_num=10", f"Global.output_dir={tmp_path}"]),
               mode="train")
    with pytest.raises(ConfigError, match="Unknown model name 'MixFormer_X'"):
        Engine(get_config(B0, ["Global.device=cpu", "Arch.name=MixFormer_X", f"Global.output_dir={tmp_path}"]),
               mode="export")
    cfg = get_config(B0, ["Global.device=cpu", "Arch.class_num=10", f"Global.output_dir={tmp_path}"])
    with pytest.warns(UserWarning, match="AMP.*CPU.*fp32"):
        engine = Engine(cfg, mode="export")
    assert engine.amp_level is None


def test_labels_beyond_class_num_are_rejected(tiny_imagenet, tmp_path):
    with pytest.raises(ConfigError, match="class_num is 2"):
        Engine(get_config(DEMO, _overrides(tiny_imagenet, tmp_path, 1) + ["Arch.class_num=2"]), mode="train")


@pytest.mark.skipif(os.environ.get("PPVH_DIST_TESTS", "0") != "1",
                    reason="2-process CPU launch (~20 s); set PPVH_DIST_TESTS=1")
def test_data_parallel_two_cpu_processes(tiny_imagenet, tmp_path):
    """python -m paddle.distributed.launch --nproc_per_node 2 on CPU (gloo): the sampler shards
    the data (2 iterations per epoch instead of 4), gradients are all-reduced (both ranks end with
    identical parameters that moved from the initial ones), eval counts every image once, and only
    rank 0 logs and writes checkpoints."""
    script = tmp_path / "dp_train.py"
    script.write_text(textwrap.dedent(f"""
        import sys; sys.path.insert(0, {ROOT!r})
        import numpy as np, paddle.distributed as dist
        from ppvision_hybrid.engine import Engine, get_config
        cfg = get_config({DEMO!r}, sys.argv[1:])
        engine = Engine(cfg, mode="train")
        # parameters only: BatchNorm running statistics are per rank (as in PaddleClas, no SyncBN)
        init = {{k: v.numpy().copy() for k, v in engine.model.named_parameters() if not v.stop_gradient}}
        engine.train()
        state = {{k: v.numpy() for k, v in engine.model.named_parameters() if not v.stop_gradient}}
        np.savez({str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.npz", **{{k.replace('.', '/'): v for k, v in state.items()}})
        moved = sum(not np.array_equal(init[k], state[k]) for k in state)
        print(f"rank {{dist.get_rank()}} of {{dist.get_world_size()}} moved {{moved}}", flush=True)
    """))
    out = tmp_path / "out"
    opts = _overrides(tiny_imagenet, out, 2, ["DataLoader.Train.sampler.batch_size=3",
                                              "DataLoader.Eval.sampler.batch_size=2"])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                           "--log_dir", str(tmp_path / "log"), str(script)] + opts,
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    logs = {r: (tmp_path / "log" / f"workerlog.{r}").read_text() for r in (0, 1)}
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs[0][-2000:] + logs[1][-2000:]
    assert "rank 0 of 2 moved" in logs[0] and "rank 1 of 2 moved" in logs[1]
    assert "[Train][Epoch 1/2][Iter: 0/2]" in logs[0]          # 12 images / 2 ranks / batch 3
    assert "[Train]" not in logs[1]                           # rank 1 stays quiet
    assert "images: 6" in logs[0]                             # every val image counted once
    a, b = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    for k in a.files:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=k)
    ckpts = os.listdir(out / "MixFormer_B0")
    assert "latest.pdparams" in ckpts and not any(".tmp" in f for f in ckpts)


def test_export_model_without_config(tmp_path):
    """tools/export_model.py --model NAME: dynamic batch, class count and image shape from flags;
    with PPVH_FULL_TESTS=1, --legacy-format either writes inference.pdmodel or explains why it
    cannot (Paddle 3.3.1)."""
    out = tmp_path / "exp"
    _run_tool("export_model.py", ["--model", "MixFormer_B0", "--class-num", "5", "--image-shape", "3", "32", "32",
                                  "--output", str(out)], tmp_path)
    from paddle import inference
    from ppvision_hybrid.inference import model_files
    model_file, params_file = model_files(str(out))
    cfg = inference.Config(model_file, params_file)
    cfg.disable_mkldnn()
    predictor = inference.create_predictor(cfg)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape([2, 3, 32, 32])
    handle.copy_from_cpu(np.zeros([2, 3, 32, 32], np.float32))
    predictor.run()
    probs = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    assert probs.shape == (2, 5) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    if os.environ.get("PPVH_FULL_TESTS", "0") != "1":
        return  # the legacy-format check below costs another export (~15 s)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_model.py"), "--model", "MixFormer_B0",
                           "--class-num", "5", "--image-shape", "3", "32", "32", "--legacy-format",
                           "--output", str(tmp_path / "legacy")], env=env, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode == 0:
        assert (tmp_path / "legacy" / "inference.pdmodel").is_file()
    else:
        assert "cannot trace this model into the legacy (.pdmodel) program" in proc.stderr
        assert not (tmp_path / "legacy" / "inference.pdmodel").exists()


# ---- training-run guards (issue 23) ------------------------------------------------------------
def _engine(data, out, mode="train", epochs=1, extra=()):
    return Engine(get_config(DEMO, _overrides(data, out, epochs, extra) + [
        "DataLoader.Train.sampler.batch_size=4", "Global.eval_during_train=False"]), mode=mode)


@pytest.mark.parametrize("key, value, message", [
    ("Global.epochs", 0, "Global.epochs must be a positive integer, got 0"),
    ("Global.epochs", -1, "Global.epochs must be a positive integer, got -1"),
    ("Global.nan_policy", "ignore", "Global.nan_policy must be one of stop, skip, got 'ignore'"),
    ("Global.overwrite", "maybe", "Global.overwrite must be True or False"),
])
def test_run_settings_are_validated(key, value, message):
    with pytest.raises(ConfigError, match=message):
        get_config(DEMO, [f"{key}={value}"])


def _nan_at(engine, call):
    real, calls = engine.train_loss, {"n": 0}

    def loss(out, labels):
        calls["n"] += 1
        losses = real(out, labels)
        if calls["n"] == call:
            losses = dict(losses, loss=losses["loss"] * float("nan"))
        return losses
    engine.train_loss = loss


def test_non_finite_loss_stops_naming_the_step_or_skips_the_batch(tiny_imagenet, tmp_path):
    from ppvision_hybrid.engine.engine import TrainingError
    engine = _engine(tiny_imagenet, tmp_path / "stop", epochs=2)
    _nan_at(engine, 5)  # epoch 2, iteration 1 (3 iterations per epoch)
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at epoch 2, iteration 1 of 3 "
                                            r"\(global step 4\).*Global.checkpoints=.*latest.*nan_policy=skip"):
        engine.train()
    ckpt = tmp_path / "stop" / "MixFormer_B0"
    with open(ckpt / "latest.pdstates", "rb") as f:
        assert pickle.load(f)["epoch"] == 1  # epoch 2 was not saved
    assert not (ckpt / "epoch_2.pdparams").exists()

    engine = _engine(tiny_imagenet, tmp_path / "skip", epochs=2, extra=["Global.nan_policy=skip"])
    _nan_at(engine, 5)
    engine.train()
    assert engine.global_step == 5  # 6 batches, one skipped
    assert "non-finite loss (nan) at epoch 2, iteration 1 of 3" in (tmp_path / "skip" / "MixFormer_B0" / "train.log").read_text()
    for v in engine.model.state_dict().values():
        assert np.isfinite(v.numpy()).all()


def test_non_finite_weights_are_never_saved(tiny_imagenet, tmp_path):
    from ppvision_hybrid.engine.engine import TrainingError
    engine = _engine(tiny_imagenet, tmp_path, epochs=1)
    engine._epoch_batches = lambda count: iter(())  # no step: only the save runs
    engine.model.head.bias.set_value(paddle.full(engine.model.head.bias.shape, float("inf")))
    with pytest.raises(TrainingError, match="non-finite values after epoch 1.*head.bias"):
        engine.train()
    assert not os.listdir(tmp_path / "MixFormer_B0") or not glob.glob(str(tmp_path / "MixFormer_B0" / "*.pd*"))


def test_a_used_output_dir_needs_resume_or_overwrite(tiny_imagenet, tmp_path):
    _engine(tiny_imagenet, tmp_path, epochs=2).train()
    ckpt = tmp_path / "MixFormer_B0"
    with pytest.raises(ConfigError, match=r"(?s)already holds checkpoints of an earlier run \(epoch_1, epoch_2, "
                                          r"latest\).*Global.checkpoints=.*latest.*Global.overwrite=True"):
        _engine(tiny_imagenet, tmp_path, epochs=1)
    with pytest.raises(ConfigError, match="pretrained_model=.*latest is one of the checkpoints that "
                                          "Global.overwrite=True would remove"):
        _engine(tiny_imagenet, tmp_path, extra=["Global.overwrite=True",
                                                f"Global.pretrained_model={ckpt / 'latest'}"])
    engine = _engine(tiny_imagenet, tmp_path, epochs=1, extra=["Global.overwrite=True"])
    assert not (ckpt / "epoch_2.pdparams").exists()  # nothing of the old run is left to mix in
    engine.train()
    with open(ckpt / "latest.pdstates", "rb") as f:
        assert pickle.load(f)["epoch"] == 1
    assert "removed the checkpoints of an earlier run" in (ckpt / "train.log").read_text()


def test_eval_and_infer_need_matching_verified_weights(tiny_imagenet, tmp_path):
    train = _engine(tiny_imagenet, tmp_path, epochs=1)
    train.train()
    latest = str(tmp_path / "MixFormer_B0" / "latest")
    for mode in ("eval", "infer"):
        with pytest.raises(ConfigError, match=f"{mode} needs trained weights.*Global.pretrained_model=.*"
                                              f"best_model.*Global.pretrained_model=random"):
            _engine(tiny_imagenet, tmp_path, mode=mode)
    assert _engine(tiny_imagenet, tmp_path, mode="eval", extra=["Global.pretrained_model=random"]).eval()["top1"] >= 0
    # a 3-class checkpoint evaluated as 4 classes: an error outside training ...
    with pytest.raises(CheckpointError, match="(?s)shape mismatches.*head.*Outside training the classifier "
                                              "must match Arch.class_num \\(4\\)"):
        _engine(tiny_imagenet, tmp_path, mode="eval", extra=[f"Global.pretrained_model={latest}", "Arch.class_num=4"])
    # ... while fine-tuning drops the head
    _engine(tiny_imagenet, tmp_path / "ft", extra=[f"Global.pretrained_model={latest}", "Arch.class_num=4"])
    # one flipped bit in a .pdparams whose .pdstates records its sha256
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in (".pdparams", ".pdstates"):
        (copy / ("latest" + suffix)).write_bytes(open(latest + suffix, "rb").read())
    data = bytearray((copy / "latest.pdparams").read_bytes())
    data[len(data) // 2] ^= 0x10
    (copy / "latest.pdparams").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="latest.pdparams does not match the checksum recorded"):
        _engine(tiny_imagenet, tmp_path, mode="eval", extra=[f"Global.pretrained_model={copy / 'latest'}"])


def test_resume_names_epoch_n_and_reports_a_changed_schedule(tiny_imagenet, tmp_path):
    _engine(tiny_imagenet, tmp_path, epochs=1).train()
    ckpt = tmp_path / "MixFormer_B0"
    for suffix in (".pdparams", ".pdopt", ".pdstates"):
        os.remove(ckpt / ("latest" + suffix))  # stopped after epoch_1, before latest
    with pytest.raises(CheckpointError, match=r"newest complete checkpoint is .*epoch_1: resume with "
                                              r"-o Global.checkpoints=.*epoch_1$"):
        _engine(tiny_imagenet, tmp_path, epochs=2, extra=[f"Global.checkpoints={ckpt / 'latest'}"])
    engine = _engine(tiny_imagenet, tmp_path, epochs=3, extra=[f"Global.checkpoints={ckpt / 'epoch_1'}",
                                                               "Optimizer.lr.learning_rate=0.001"])
    assert engine.start_epoch == 1
    log = (ckpt / "train.log").read_text()
    assert ("changed schedule: Global.epochs: 1 -> 3; Optimizer.lr.learning_rate: 0.002 -> 0.001" in log), log[-2000:]


def test_resume_repairs_a_best_model_left_behind(tmp_path):
    from ppvision_hybrid.engine.checkpoint import copy_checkpoint, repair_best_model
    layer = paddle.nn.Linear(2, 2)

    def save(prefix, epoch, best):
        save_checkpoint(str(tmp_path / prefix), {k: paddle.full(v.shape, float(epoch)) for k, v in layer.state_dict().items()},
                        {}, {"epoch": epoch, "best": {"metric": 0.5, "epoch": best}})
    save("epoch_1", 1, 1)
    copy_checkpoint(str(tmp_path / "epoch_1"), str(tmp_path / "best_model"))
    copy_checkpoint(str(tmp_path / "epoch_1"), str(tmp_path / "latest"))
    save("epoch_2", 2, 2)  # stopped here: best_model and latest still at epoch 1
    with open(tmp_path / "epoch_2.pdstates", "rb") as f:
        states = pickle.load(f)
    assert "now holds epoch 2" in repair_best_model(str(tmp_path), states, str(tmp_path / "epoch_2"))
    assert load_resume_states(str(tmp_path / "best_model"), layer)["epoch"] == 2
    assert repair_best_model(str(tmp_path), states) is None  # consistent now
    save("latest", 3, 3)  # between save intervals: latest itself records the new best
    with open(tmp_path / "latest.pdstates", "rb") as f:
        states = pickle.load(f)
    assert "now holds epoch 3" in repair_best_model(str(tmp_path), states, str(tmp_path / "latest"))
    states["best"]["epoch"] = 7
    assert "no intact checkpoint" in repair_best_model(str(tmp_path), states)
