"""Console scripts (``[project.scripts]`` in pyproject.toml). Each tools/*.py file (and
deploy/python/predict_cls.py) is the same command for a checkout without installing. Every command
returns its exit status (0) and reports expected errors as one ``error:`` line with an exit status (:func:`.cli_errors.main_guard`;
``--debug`` for the traceback). Heavy imports happen inside the commands, so ``--help`` is quick."""
import argparse
import os
import subprocess
import sys

from .cli_errors import UserError, main_guard

__all__ = ["train", "evaluate", "infer", "model_info", "export_onnx", "export_model", "convert_weights",
           "benchmark", "predict_cls", "train_det", "eval_det", "export_det", "train_seg", "eval_seg",
           "export_seg"]


def _engine_command(mode, name, doc):
    """A guarded ``main(argv)`` running ``Engine(config, mode)`` from a PaddleClas-style command line."""
    def command(argv=None):
        from .engine.cli import run
        run(mode, argv, description=doc)
        return 0
    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    return main_guard(command)


train = _engine_command("train", "train",
                        "``ppvh-train -c CONFIG [-o Section.key=value ...]`` (= python tools/train.py).")
evaluate = _engine_command("eval", "evaluate",
                           "``ppvh-eval -c CONFIG [-o Section.key=value ...]`` (= python tools/eval.py).")
infer = _engine_command("infer", "infer",
                        "``ppvh-infer -c CONFIG [-o Section.key=value ...]`` (= python tools/infer.py).")


def _package_command(module, name, doc):
    """A guarded ``main(argv)`` calling ``ppvision_hybrid.<module>.main`` (imported when run)."""
    def command(argv=None):
        import importlib
        return importlib.import_module(f".{module}", __package__).main(argv)
    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    return main_guard(command)


model_info = _package_command("flops", "model_info", "``ppvh-model-info NAME ...`` (= python tools/model_info.py).")
export_onnx = _package_command("onnx", "export_onnx", "``ppvh-export-onnx ...`` (= python tools/export_onnx.py).")
convert_weights = _package_command("convert", "convert_weights",
                                   "``ppvh-convert-weights --model NAME --src FILE --dst FILE.pdparams`` "
                                   "(= python tools/convert_weights.py).")
benchmark = _package_command("benchmark", "benchmark",
                             "``ppvh-benchmark [--models ...] [--write]`` (= python tools/benchmark.py).")


def predict_cls(argv=None):
    """``ppvh-predict-cls -c CONFIG -o Global.inference_model_dir=DIR ...`` (= python
    deploy/python/predict_cls.py; guarded in :mod:`.predict`)."""
    from .predict import main
    return main(argv)


# ---- ppvh-export: a Paddle Inference model from a config or a model name --------------------
EXPORT_DOC = """Export a Paddle Inference model (dynamic batch): ppvh-export (= python tools/export_model.py).

PaddleClas style:  ppvh-export -c CONFIG [-o Global.pretrained_model=...]
                   (writes Global.save_inference_dir/inference.{json|pdmodel,pdiparams} and
                   inference.yml: pre-processing, top-k and class names, PaddleClas's
                   export_for_fd layout)
No config:         ppvh-export --model MixFormer_B0 [--class-num 1000]
                   [--image-shape 3 224 224] [--dynamic-hw] [--features-only] [--pretrained PATH]
                   [--output DIR]
--legacy-format asks for the Paddle 2.6 ``inference.pdmodel`` program. On Paddle 2.6 that is the
native format. On Paddle 3.x the old IR is selected with FLAGS_enable_pir_api=0 (it must be set
before paddle is imported, so the command re-runs itself in a child process with it); Paddle 3.3.1
however rebinds gelu, sigmoid, matmul, sum, exp ... to PIR-only kernels, so tracing these models
into the old IR fails there, and the command then says so (measured; use the default .json format,
which Paddle Inference 3.x loads, or export under Paddle 2.6).
"""


def _export_args(argv=None):
    p = argparse.ArgumentParser(description=EXPORT_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="YAML config (PaddleClas schema)")
    p.add_argument("-o", "--override", action="append", default=[], help="Section.key=value, repeatable")
    p.add_argument("--model", help="registered model name (export without a config)")
    p.add_argument("--class-num", type=int, default=1000)
    p.add_argument("--image-shape", type=int, nargs=3, default=None, metavar=("C", "H", "W"))
    p.add_argument("--dynamic-hw", action="store_true", help="dynamic H and W as well as batch")
    p.add_argument("--features-only", action="store_true", help="export the feature pyramid (dense tasks)")
    p.add_argument("--pretrained", default=None, help="weights (.pdparams) for --model")
    p.add_argument("--no-softmax", action="store_true", help="export logits instead of probabilities")
    p.add_argument("--legacy-format", action="store_true", help="write the Paddle 2.6 .pdmodel format")
    p.add_argument("--output", default=None, help="output folder (default: Global.save_inference_dir or ./inference/<model>)")
    args = p.parse_args(argv)
    if bool(args.config) == bool(args.model):
        p.error("give exactly one of -c CONFIG or --model NAME")
    return args


@main_guard
def export_model(argv=None):
    """``ppvh-export -c CONFIG | --model NAME ...`` (= python tools/export_model.py)."""
    argv = sys.argv[1:] if argv is None else argv
    args = _export_args(argv)
    if args.legacy_format and os.environ.get("FLAGS_enable_pir_api") != "0":
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, FLAGS_enable_pir_api="0", PYTHONPATH=path)
        child = "import sys; from ppvision_hybrid.cli import export_model; sys.exit(export_model(sys.argv[1:]))"
        return subprocess.call([sys.executable, "-c", child] + list(argv), env=env)

    import paddle  # (after the IR flag is settled)

    try:
        prefix = _export(args)
    except TypeError as e:
        if "must be Value, but got Variable" in str(e):
            raise UserError(f"--legacy-format: Paddle {paddle.__version__} cannot trace this model into "
                            f"the legacy (.pdmodel) program: its functional API dispatches gelu/sigmoid/"
                            f"matmul/... to PIR-only kernels ({_first_line_with(str(e), 'must be Value')}). "
                            f"Export without --legacy-format (inference.json, loaded by Paddle Inference "
                            f"3.x) or run this command under Paddle 2.6, which writes inference.pdmodel "
                            f"natively.") from None
        raise
    return 0 if prefix else 1


def _first_line_with(text, needle):
    return next((line.strip() for line in text.splitlines() if needle in line), "")


def _export(args):
    from .engine import Engine, get_config
    from .export import export_inference_model

    if args.config:
        config = get_config(args.config, args.override)
        if args.image_shape:
            config["Global"]["image_shape"] = list(args.image_shape)
        return Engine(config, mode="export").export(save_dir=args.output, dynamic_hw=args.dynamic_hw)
    from .registry import create_model, get_model_spec
    try:
        spec = get_model_spec(args.model)
    except KeyError as err:
        raise UserError(f"--model: {err.args[0]}") from None
    kwargs = dict(features_only=True) if args.features_only else {}
    model = create_model(args.model, pretrained=args.pretrained or False, class_num=args.class_num, **kwargs)
    out = args.output or os.path.join("inference", args.model)
    shape = tuple(args.image_shape or spec.default_input)
    infer_config = None
    if not args.features_only:  # a classifier: record its pre/post-processing
        from .inference_yml import default_transforms
        infer_config = {"transforms": default_transforms(shape), "model_name": args.model}
    prefix = export_inference_model(model, out, shape, with_softmax=not (args.no_softmax or args.features_only),
                                    dynamic_hw=args.dynamic_hw or args.features_only,
                                    infer_config=infer_config)
    print(f"[ppvision_hybrid] exported {args.model} to {out}: "
          f"{sorted(f for f in os.listdir(out) if f.startswith('inference'))}")
    return prefix


# ---- PaddleDetection: ppdet's own Trainer with a ppvision_hybrid backbone ------------------
@main_guard
def train_det(argv=None):
    """``ppvh-train-det -c configs/det/demo/mask_rcnn_demo.yml --eval -o PVHBackbone.arch=TransXNet_T``
    (= python tools/train_det.py): ppdet's own Trainer."""
    from .adapters.cli import det_session
    cfg, args = det_session(argv, "train", [
        (("--eval",), dict(action="store_true", help="evaluate after every snapshot epoch")),
        (("-r", "--resume"), dict(default=None, help="checkpoint to resume from"))])
    from ppdet.engine import Trainer
    trainer = Trainer(cfg, mode="train")
    if args.resume:
        trainer.resume_weights(args.resume)
    elif cfg.get("pretrain_weights"):
        trainer.load_weights(cfg.pretrain_weights)
    trainer.train(args.eval)
    return 0


@main_guard
def eval_det(argv=None):
    """``ppvh-eval-det -c CONFIG -o weights=output/demo_det/model_final`` (= python tools/eval_det.py):
    COCO bbox / segm AP through pycocotools with ppdet's own Trainer."""
    from .adapters.cli import det_session
    cfg, _ = det_session(argv, "eval")
    from ppdet.engine import Trainer
    trainer = Trainer(cfg, mode="eval")
    trainer.load_weights(cfg.weights)
    trainer.evaluate()
    return 0


@main_guard
def export_det(argv=None):
    """``ppvh-export-det -c CONFIG --output_dir DIR -o weights=...`` (= python tools/export_det.py):
    model.json/.pdiparams + infer_cfg.yml; inputs image [N,3,H,W] (dynamic H, W), im_shape [N,2],
    scale_factor [N,2]."""
    from .adapters.cli import det_session
    cfg, args = det_session(argv, "test", [
        (("--output_dir",), dict(default="output_inference", help="export directory"))])
    from ppdet.engine import Trainer
    from .adapters.pipeline import export_det_model
    trainer = Trainer(cfg, mode="test")
    trainer.load_weights(cfg.weights)
    export_det_model(trainer, args.output_dir)  # written as one set, the old export kept on failure
    return 0


# ---- PaddleSeg: its own core.train / core.evaluate ----------------------------------------
def _load_seg_weights(model, path):
    if path:
        import paddle
        if not os.path.isfile(path):
            raise FileNotFoundError(2, "--model_path: no such weights file", path)
        model.set_state_dict(paddle.load(path))


@main_guard
def train_seg(argv=None):
    """Train a PaddleSeg model with a ppvision_hybrid backbone (PaddleSeg's own core.train):
    ``ppvh-train-seg --config configs/seg/demo/upernet_demo.yml --do_eval --opts model.backbone.arch=TransXNet_T``
    (= python tools/train_seg.py)."""
    from .adapters.cli import seg_session
    cfg, builder, args = seg_session(argv, train_seg.__doc__, [
        (("--save_dir",), dict(default="output/seg")),
        (("--save_interval",), dict(type=int, default=1000)),
        (("--log_iters",), dict(type=int, default=10)),
        (("--resume_model",), dict(default=None)),
        (("--num_workers",), dict(type=int, default=0)),
        (("--keep_checkpoint_max",), dict(type=int, default=5)),
        (("--do_eval",), dict(action="store_true"))])
    from paddleseg import core
    model = builder.model
    core.train(model, builder.train_dataset,
               val_dataset=builder.val_dataset if args.do_eval else None,
               optimizer=builder.optimizer, save_dir=args.save_dir, iters=cfg.iters,
               batch_size=cfg.batch_size, resume_model=args.resume_model,
               save_interval=args.save_interval, log_iters=args.log_iters,
               num_workers=args.num_workers, losses=builder.loss,
               keep_checkpoint_max=args.keep_checkpoint_max, test_config=cfg.test_config)
    return 0


@main_guard
def eval_seg(argv=None):
    """Evaluate (mIoU) with PaddleSeg's own core.evaluate:
    ``ppvh-eval-seg --config CONFIG --model_path output/seg/iter_4/model.pdparams`` (= python tools/eval_seg.py)."""
    from .adapters.cli import seg_session
    cfg, builder, args = seg_session(argv, eval_seg.__doc__, [
        (("--model_path",), dict(default=None, help="weights (.pdparams) to evaluate")),
        (("--num_workers",), dict(type=int, default=0))])
    from paddleseg import core
    model = builder.model
    _load_seg_weights(model, args.model_path)
    test_config = dict(cfg.test_config or {})
    core.evaluate(model, builder.val_dataset, num_workers=args.num_workers, **test_config)  # logs mIoU
    return 0


@main_guard
def export_seg(argv=None):
    """Export a PaddleSeg model for Paddle Inference (model.json/.pdiparams + deploy.yaml; full
    graph, dynamic batch, height and width; the paddleseg wheel has no export tool):
    ``ppvh-export-seg --config CONFIG --model_path MODEL.pdparams --save_dir DIR [--output_op argmax]``
    (= python tools/export_seg.py). Output: the logits [N, num_classes, H, W]."""
    from .adapters.cli import seg_session
    cfg, builder, args = seg_session(argv, export_seg.__doc__, [
        (("--model_path",), dict(default=None)),
        (("--save_dir",), dict(default="output/seg_inference")),
        (("--output_op",), dict(default="none", choices=["none", "argmax", "softmax"]))])
    from .adapters.pipeline import export_seg_model
    model = builder.model
    _load_seg_weights(model, args.model_path)
    export_seg_model(model, args.save_dir, cfg.dic["val_dataset"]["transforms"], args.output_op)
    print(f"exported to {args.save_dir}")
    return 0
