"""Export a PaddleSeg model for Paddle Inference (model.json/.pdiparams + deploy.yaml).

The paddleseg wheel has no export tool; this converts with ``paddle.jit.to_static``
(full graph, dynamic batch, height and width) and writes PaddleSeg's deploy.yaml layout.

    python tools/export_seg.py --config configs/seg/demo/upernet_demo.yml \
        --model_path output/seg/iter_4/model.pdparams --save_dir output/seg_inference
Output: the logits [N, num_classes, H, W] (``--output_op argmax`` for label maps).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppvision_hybrid.cli_errors import main_guard  # noqa: E402
from ppvision_hybrid.adapters.cli import seg_session  # noqa: E402


@main_guard
def main(argv=None):
    cfg, builder, args = seg_session(argv, __doc__, [
        (("--model_path",), dict(default=None)),
        (("--save_dir",), dict(default="output/seg_inference")),
        (("--output_op",), dict(default="none", choices=["none", "argmax", "softmax"]))])
    import paddle
    from ppvision_hybrid.adapters.pipeline import export_seg_model
    model = builder.model
    if args.model_path:
        if not os.path.isfile(args.model_path):
            raise FileNotFoundError(2, "--model_path: no such weights file", args.model_path)
        model.set_state_dict(paddle.load(args.model_path))
    export_seg_model(model, args.save_dir, cfg.dic["val_dataset"]["transforms"], args.output_op)
    print(f"exported to {args.save_dir}")
    return args.save_dir


if __name__ == "__main__":
    main()
