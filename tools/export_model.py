"""Export a Paddle Inference model (dynamic batch).

PaddleClas style:  python tools/export_model.py -c CONFIG [-o Global.pretrained_model=...]
                   (writes Global.save_inference_dir/inference.{json|pdmodel,pdiparams} and
                   inference.yml: pre-processing, top-k and class names, PaddleClas's
                   export_for_fd layout)
No config:         python tools/export_model.py --model MixFormer_B0 [--class-num 1000]
                   [--image-shape 3 224 224] [--dynamic-hw] [--features-only] [--pretrained PATH]
                   [--output DIR]
--legacy-format asks for the Paddle 2.6 ``inference.pdmodel`` program. On Paddle 2.6 that is the
native format. On Paddle 3.x the old IR is selected with FLAGS_enable_pir_api=0 (it must be set
before paddle is imported, so the tool re-runs itself in a child process with it); Paddle 3.3.1
however rebinds gelu, sigmoid, matmul, sum, exp ... to PIR-only kernels, so tracing these models
into the old IR fails there, and the tool then says so (measured; use the default .json format,
which Paddle Inference 3.x loads, or export under Paddle 2.6).
"""
# Paddle 2.6.x (PyPI's paddlepaddle-gpu 2.6.2): Python's zlib must be loaded before paddle,
# or any later zlib/PNG compression crashes with SIGSEGV. A no-op on Paddle 3.x.
import zlib  # noqa: F401,I001
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from ppvision_hybrid.cli_errors import UserError, main_guard  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.legacy_format and os.environ.get("FLAGS_enable_pir_api") != "0":
        env = dict(os.environ, FLAGS_enable_pir_api="0")
        return subprocess.call([sys.executable, os.path.abspath(__file__)] + list(argv), env=env)

    import paddle  # (after the IR flag is settled)

    try:
        prefix = _export(args)
    except TypeError as e:
        if "must be Value, but got Variable" in str(e):
            raise UserError(f"--legacy-format: Paddle {paddle.__version__} cannot trace this model into "
                            f"the legacy (.pdmodel) program: its functional API dispatches gelu/sigmoid/"
                            f"matmul/... to PIR-only kernels ({_first_line_with(str(e), 'must be Value')}). "
                            f"Export without --legacy-format (inference.json, loaded by Paddle Inference "
                            f"3.x) or run this tool under Paddle 2.6, which writes inference.pdmodel "
                            f"natively.") from None
        raise
    return 0 if prefix else 1


def _first_line_with(text, needle):
    return next((line.strip() for line in text.splitlines() if needle in line), "")


def _export(args):
    from ppvision_hybrid.engine import Engine, get_config
    from ppvision_hybrid.export import export_inference_model

    if args.config:
        config = get_config(args.config, args.override)
        if args.image_shape:
            config["Global"]["image_shape"] = list(args.image_shape)
        prefix = Engine(config, mode="export").export(save_dir=args.output, dynamic_hw=args.dynamic_hw)
    else:
        from ppvision_hybrid import create_model, get_model_spec
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
            from ppvision_hybrid.inference_yml import default_transforms
            infer_config = {"transforms": default_transforms(shape), "model_name": args.model}
        prefix = export_inference_model(model, out, shape, with_softmax=not (args.no_softmax or args.features_only),
                                        dynamic_hw=args.dynamic_hw or args.features_only,
                                        infer_config=infer_config)
        print(f"[ppvision_hybrid] exported {args.model} to {out}: "
              f"{sorted(f for f in os.listdir(out) if f.startswith('inference'))}")
    return prefix


if __name__ == "__main__":
    sys.exit(main())
