"""Evaluate (mIoU) with PaddleSeg's own core.evaluate.

    python tools/eval_seg.py --config configs/seg/demo/upernet_demo.yml \
        --model_path output/seg/iter_4/model.pdparams
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppvision_hybrid.cli_errors import main_guard  # noqa: E402
from ppvision_hybrid.adapters.cli import seg_session  # noqa: E402


@main_guard
def main(argv=None):
    cfg, builder, args = seg_session(argv, __doc__, [
        (("--model_path",), dict(default=None, help="weights (.pdparams) to evaluate")),
        (("--num_workers",), dict(type=int, default=0))])
    import paddle
    from paddleseg import core
    model = builder.model
    if args.model_path:
        if not os.path.isfile(args.model_path):
            raise FileNotFoundError(2, "--model_path: no such weights file", args.model_path)
        model.set_state_dict(paddle.load(args.model_path))
    test_config = dict(cfg.test_config or {})
    miou, acc, class_iou, class_precision, kappa = core.evaluate(
        model, builder.val_dataset, num_workers=args.num_workers, **test_config)
    return dict(miou=float(miou), acc=float(acc), class_iou=[float(v) for v in class_iou],
                kappa=float(kappa))


if __name__ == "__main__":
    main()
