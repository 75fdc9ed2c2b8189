"""``python -m ppvision_hybrid.dense <script>``: toolkit-style scripts (written the way
PaddleDetection's and PaddleSeg's own tools drive their libraries, knowing nothing of our
backbones) train, evaluate and export our configs on the installed wheels, end to end, in
fresh processes; plus the weights-layout lookup and the launcher's own options."""
import os
import subprocess
import sys
import textwrap

import pytest

import paddleseg  # noqa: F401  (installed by install.sh: an import failure fails the run)
import ppdet  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: what PaddleDetection's tools/{train,eval,export_model}.py do with the library
DET_TOOL = textwrap.dedent("""
    import sys
    from ppdet.core.workspace import load_config, merge_config
    from ppdet.engine import Trainer
    from ppdet.utils.cli import ArgsParser

    parser = ArgsParser()
    parser.add_argument("--mode", choices=["train", "eval", "export"])
    parser.add_argument("--output_dir", default="output_inference")
    args = parser.parse_args()
    cfg = load_config(args.config)
    merge_config(args.opt)
    if args.mode == "train":
        Trainer(cfg, mode="train").train(validate=False)
    elif args.mode == "eval":
        trainer = Trainer(cfg, mode="eval")
        trainer.load_weights(cfg.weights)
        trainer.evaluate()
    else:
        trainer = Trainer(cfg, mode="test")
        trainer.load_weights(cfg.weights)
        trainer.export(args.output_dir)
""")

#: what PaddleSeg's tools/train.py and val.py do with the library
SEG_TOOL = textwrap.dedent("""
    import argparse
    import paddle
    from paddleseg import core
    from paddleseg.cvlibs import Config, SegBuilder

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    parser.add_argument("--save_dir")
    parser.add_argument("--opts", nargs="+", default=None)
    args = parser.parse_args()
    cfg = Config(args.config, opts=args.opts)
    builder = SegBuilder(cfg)
    core.train(builder.model, builder.train_dataset, optimizer=builder.optimizer,
               save_dir=args.save_dir, iters=cfg.iters, batch_size=cfg.batch_size,
               save_interval=cfg.iters, log_iters=1, losses=builder.loss)
    miou, acc, _, _, _ = core.evaluate(builder.model, builder.val_dataset)
    print(f"RESULT miou={float(miou):.4f}")
""")


def _launch(args, cwd, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "ppvision_hybrid.dense"] + args, cwd=str(cwd),
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from ppvision_hybrid.datasets.dense_demo import make_dense_demo
    root = tmp_path_factory.mktemp("launcher")
    make_dense_demo(str(root / "output" / "dense_demo"), num_images=4, num_val=2)
    (root / "det_tool.py").write_text(DET_TOOL)
    (root / "seg_tool.py").write_text(SEG_TOOL)
    return root


def test_toolkit_style_det_script_trains_evaluates_exports_on_the_wheel(workdir):
    config = os.path.join(ROOT, "configs", "det", "demo", "mask_rcnn_demo.yml")
    train = _launch(["det_tool.py", "--mode", "train", "-c", config, "-o", "epoch=1"], workdir)
    assert train.returncode == 0, train.stderr[-3000:]
    # the wheel's code has the bugs: every ppdet fix was applied, and said so
    assert ("PVHBackbone registered in ppdet from " in train.stderr
            and "compat fixes: concat_0d, det_bbox_post_branch_free" in train.stderr), train.stderr[-2000:]
    # the 2.6 wheel saves into save_dir/<config name>; the config names develop's layout
    assert (workdir / "output/demo_det/mask_rcnn_demo/mask_rcnn_demo/model_final.pdparams").is_file()
    evaluate = _launch(["det_tool.py", "--mode", "eval", "-c", config], workdir)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert "the other toolkit version's save layout" in evaluate.stdout + evaluate.stderr
    assert "Average Precision" in evaluate.stdout + evaluate.stderr
    export = _launch(["det_tool.py", "--mode", "export", "-c", config, "--output_dir", "inference"],
                     workdir)
    assert export.returncode == 0, export.stderr[-3000:]
    exported = workdir / "inference" / "mask_rcnn_demo"
    assert {"model.json", "model.pdiparams", "infer_cfg.yml"} <= set(os.listdir(exported))
    from ppvision_hybrid.adapters.verify import det_inputs, run_predictor
    outputs = run_predictor(str(exported), det_inputs(128, 160))
    assert any(o.ndim == 2 and o.shape[1] == 6 for o in outputs)  # boxes [N, 6]


def test_toolkit_style_seg_script_trains_and_evaluates_on_the_wheel(workdir):
    config = os.path.join(ROOT, "configs", "seg", "demo", "upernet_demo.yml")
    out = _launch(["seg_tool.py", "--config", config, "--save_dir", "seg_out",
                   "--opts", "iters=2"], workdir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "compat fixes: concat_0d, seg_ce_float, seg_train_loss_shape" in out.stderr
    miou = float(out.stdout.split("RESULT miou=")[1].split()[0])
    assert 0.0 <= miou <= 1.0
    assert (workdir / "seg_out" / "iter_2" / "model.pdparams").is_file()


def test_launcher_options_and_errors(workdir):
    check = _launch(["--check"], workdir)
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stderr.count("PVHBackbone registered in") == 2
    channels = _launch(["--channels", "MixFormer_B0"], workdir)
    assert channels.returncode == 0 and channels.stdout.strip().startswith("["), channels.stderr
    missing = _launch(["no_such_tool.py"], workdir)
    assert missing.returncode == 2 and "no script 'no_such_tool.py'" in missing.stderr
    assert _launch([], workdir).returncode == 2


def test_weights_found_in_either_save_layout(tmp_path):
    from ppvision_hybrid.adapters.ppdet import resolve_weights
    cfg = {"filename": "mask_rcnn_demo", "save_dir": str(tmp_path / "mask_rcnn_demo")}
    develop = tmp_path / "mask_rcnn_demo" / "model_final"
    wheel = tmp_path / "mask_rcnn_demo" / "mask_rcnn_demo" / "model_final"
    assert resolve_weights(cfg, str(develop)) == str(develop)  # nothing there: unchanged
    wheel.parent.mkdir(parents=True)
    wheel.with_suffix(".pdparams").write_bytes(b"")
    assert resolve_weights(cfg, str(develop)) == str(wheel)
    assert resolve_weights(cfg, str(wheel)) == str(wheel)
    os.remove(wheel.with_suffix(".pdparams"))
    develop.with_suffix(".pdparams").write_bytes(b"")
    assert resolve_weights(cfg, str(wheel)) == str(develop)
    assert resolve_weights(cfg, "https://example.org/x.pdparams") == "https://example.org/x.pdparams"
